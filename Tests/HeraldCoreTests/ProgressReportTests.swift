import Testing
@testable import HeraldCore

@Suite struct ProgressReportTests {
    @Test(arguments: [
        ("42", 42.0, nil as String?),
        ("42 rendering page 4", 42.0, "rendering page 4"),
        ("42.5", 42.5, nil),
        ("0", 0.0, nil),
        ("100", 100.0, nil),
        ("42\r", 42.0, nil),
        ("42 rendering page 4\r", 42.0, "rendering page 4"),
        ("  7\tstep   two  ", 7.0, "step   two  "),
        ("12.5\tsplitting", 12.5, "splitting"),
    ])
    func plainLines(line: String, progress: Double, message: String?) throws {
        let report = try #require(ProgressReport(line: line))
        #expect(report.progress == progress)
        #expect(report.message == message)
        #expect(report.result == nil)
    }

    @Test func jsonLine() throws {
        let report = try #require(ProgressReport(line: #"{"progress":10,"message":"x","result":{"url":"/r.pdf","pages":[1,2]}}"#))
        #expect(report.progress == 10)
        #expect(report.message == "x")
        #expect(report.result == .object([("url", .string("/r.pdf")), ("pages", .array([.number("1"), .number("2")]))]))
    }

    @Test func jsonLineWithCRLFAndSpaces() throws {
        let report = try #require(ProgressReport(line: "  {\"progress\": 55.5} \r"))
        #expect(report.progress == 55.5)
        #expect(report.message == nil)
    }

    @Test func jsonLineWithAnyOfTheFields() throws {
        #expect(ProgressReport(line: #"{"message":"only words"}"#) == ProgressReport(message: "only words"))
        #expect(ProgressReport(line: #"{"result":[1]}"#) == ProgressReport(result: .array([.number("1")])))
        #expect(ProgressReport(line: #"{"result":null}"#) == ProgressReport(result: .null))
        #expect(ProgressReport(line: #"{"progress":3}"#) == ProgressReport(progress: 3))
    }

    @Test func resultUpTo64KiBIsKept() throws {
        // {"result":"…"}: the result's JSON text is the string plus its two quotes.
        let fits = String(repeating: "a", count: ProgressReport.maxResultBytes - 2)
        let report = try #require(ProgressReport(line: #"{"progress":1,"result":""# + fits + #""}"#))
        #expect(report.result == .string(fits))
    }

    @Test func resultOver64KiBIsDropped() throws {
        let big = String(repeating: "a", count: ProgressReport.maxResultBytes - 1)
        let report = try #require(ProgressReport(line: #"{"progress":90,"message":"m","result":""# + big + #""}"#))
        #expect(report.result == nil)
        #expect(report.progress == 90)
        #expect(report.message == "m")
        // With nothing else in it, the line is ignored.
        #expect(ProgressReport(line: #"{"result":""# + big + #""}"#) == nil)
    }

    @Test(arguments: [
        "", " ", "\r", "hello", "abc 42", "42abc", "42%", "nan", "NaN", "inf", "-inf", "infinity",
        "{", "{\"progress\":}", "{}", "{\"other\":1}", "[1,2]", "\"42\"", "{\"progress\":\"50\"}",
        "{\"progress\":10} trailing", "{\"message\":5}",
    ])
    func garbageIsIgnored(line: String) {
        #expect(ProgressReport(line: line) == nil)
    }

    @Test func worksOnSubstrings() throws {
        let buffer = "10 one\n20 two\n"
        let lines = buffer.split(separator: "\n")
        #expect(ProgressReport(line: lines[1]) == ProgressReport(progress: 20, message: "two"))
    }
}
