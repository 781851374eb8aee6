import Testing
@testable import HeraldCore

@Suite struct ParamsTests {
    static let report = KindConfig(
        name: "report", executor: .command(["/usr/local/bin/make-report"]),
        params: [
            "month": try! ParamPattern("^[0-9]{4}-(0[1-9]|1[0-2])$"),
            "count": try! ParamPattern("^[0-9]+$"),
            "amount": try! ParamPattern("[0-9]+\\.[0-9]+"),
            "flag": try! ParamPattern("true|false"),
            "note": try! ParamPattern(".*"),
        ])
    static let demo = KindConfig(name: "demo", executor: .demo)

    func validate(_ kind: KindConfig, _ json: String) throws(ParamsError) -> [String: String] {
        try kind.validate(params: try! JSON.parse(json))
    }

    @Test func stringsAreTakenAsIs() throws {
        #expect(try validate(Self.report, #"{"month":"2026-10","count":"12"}"#) == ["month": "2026-10", "count": "12"])
    }

    @Test func numbersAndBooleansAreTakenAsTheirJSONText() throws {
        #expect(try validate(Self.report, #"{"amount":1.50}"#) == ["amount": "1.50"])
        #expect(try validate(Self.report, #"{"count":12}"#) == ["count": "12"])
        #expect(try validate(Self.report, #"{"flag":true}"#) == ["flag": "true"])
        #expect(try validate(Self.report, #"{"flag":false}"#) == ["flag": "false"])
        #expect(try validate(Self.report, #"{"note":1e3}"#) == ["note": "1e3"])
        #expect(try validate(Self.report, #"{"note":-0.0}"#) == ["note": "-0.0"])
    }

    @Test(arguments: [#"{"note":null}"#, #"{"note":[1]}"#, #"{"note":{"a":"b"}}"#, #"{"note":[]}"#])
    func nullArraysAndObjectsAreRefused(json: String) {
        #expect(throws: ParamsError.wrongType("note")) { try validate(Self.report, json) }
        #expect(throws: ParamsError.wrongType("note")) { try validate(Self.demo, json) }
    }

    @Test(arguments: ["[]", "\"month\"", "1", "true"])
    func paramsMustBeAnObject(json: String) {
        #expect(throws: ParamsError.notAnObject) { try validate(Self.report, json) }
    }

    @Test func missingOrNullParamsAreEmpty() throws {
        #expect(try Self.report.validate(params: nil) == [:])
        #expect(try Self.report.validate(params: .null) == [:])
        #expect(try validate(Self.report, "{}") == [:])
        #expect(try Self.demo.validate(params: nil) == [:])
    }

    @Test func allowList() {
        #expect(throws: ParamsError.notAllowed("year", kind: "report")) { try validate(Self.report, #"{"year":"2026"}"#) }
        #expect(throws: ParamsError.notAllowed("Month", kind: "report")) { try validate(Self.report, #"{"Month":"2026-10"}"#) }
        let none = KindConfig(name: "plain", executor: .command(["/bin/true"]))
        #expect(throws: ParamsError.notAllowed("a", kind: "plain")) { try validate(none, #"{"a":"1"}"#) }
    }

    @Test(arguments: [
        ("count", "12", true), ("count", "12\n", false), ("count", "\n12", false), ("count", "", false), ("count", "1a", false),
        ("month", "2026-10", true), ("month", "2026-13", false), ("month", "2026-10\n", false), ("month", "x2026-10", false),
        // No anchors in the pattern: still a whole match.
        ("amount", "1.50", true), ("amount", "x1.50", false), ("amount", "1.50x", false),
        ("flag", "true", true), ("flag", "truefalse", false), ("flag", "true\r\n", false),
    ])
    func regexMustMatchTheWholeValue(name: String, value: String, ok: Bool) throws {
        let json = JSON.object([(name, .string(value))])
        if ok {
            #expect(try Self.report.validate(params: json) == [name: value])
        } else {
            #expect(throws: ParamsError.noMatch(name)) { try Self.report.validate(params: json) }
        }
    }

    @Test func nulByteIsRefused() {
        #expect(throws: ParamsError.self) { try Self.report.validate(params: .object([("note", .string("a\u{0}b"))])) }
    }

    @Test func lastDuplicateWins() throws {
        #expect(try validate(Self.report, #"{"count":"1","count":"2"}"#) == ["count": "2"])
    }

    @Test func patternsMatchUnicodeScalarsWithASCIIClasses() throws {
        // Swift's default semantics would take a letter with 30 combining accents as one `.`,
        // and any script's digits for `\d`; an allow-list must be as strict as PCRE.
        let short = try ParamPattern("^.{1,4}$")
        #expect(short.matchesWhole("abcd"))
        #expect(!short.matchesWhole("a" + String(repeating: "\u{0301}", count: 30)))
        let digits = try ParamPattern("^\\d{4}$")
        #expect(digits.matchesWhole("2026"))
        #expect(!digits.matchesWhole("\u{0662}\u{0660}\u{0662}\u{0666}"))
        let upper = try ParamPattern("^[A-Z]+$")
        #expect(!upper.matchesWhole("\u{212A}"))  // KELVIN SIGN, canonically a K
    }

    @Test func paramNamesMatchTheAllowListByteForByte() {
        let kind = KindConfig(name: "k", executor: .command(["/bin/true"]), params: ["Kind": try! ParamPattern(".*")])
        #expect(throws: ParamsError.self) { try kind.validate(params: .object([("\u{212A}ind", .string("x"))])) }
        #expect(try! kind.validate(params: .object([("Kind", .string("x"))])) == ["Kind": "x"])
    }

    @Test func paramPatternCompilation() {
        #expect(throws: (any Error).self) { try ParamPattern("[0-9") }
        #expect(throws: (any Error).self) { try ParamPattern("(a") }
        #expect(throws: Never.self) { try ParamPattern("^a|b$") }
    }

    // MARK: Demo

    @Test(arguments: [
        ("steps", "1"), ("steps", "10000"), ("interval_ms", "0"), ("interval_ms", "60000"), ("fail_at", "1"), ("fail_at", "3"),
    ])
    func demoAcceptsInRange(name: String, value: String) throws {
        #expect(try Self.demo.validate(params: .object([(name, .string(value))])) == [name: value])
    }

    @Test(arguments: [
        ("steps", "0"), ("steps", "10001"), ("steps", "-1"), ("steps", "1.5"), ("steps", ""), ("steps", "ten"), ("steps", "1e3"),
        ("steps", " 5"), ("steps", "99999999999999999999"), ("interval_ms", "60001"), ("interval_ms", "-5"), ("fail_at", "0"),
        ("steps", "true"),
    ])
    func demoRefusesOutOfRange(name: String, value: String) {
        #expect(throws: ParamsError.self) { try Self.demo.validate(params: .object([(name, .string(value))])) }
        do {
            _ = try DemoParams([name: value])
            Issue.record("accepted \(name)=\(value)")
        } catch {
            guard case let .outOfRange(n, range) = error else { Issue.record("\(error)"); return }
            #expect(n == name)
            #expect(range == DemoParams.ranges[name])
        }
    }

    @Test func demoNumbersFromJSON() throws {
        #expect(try validate(Self.demo, #"{"steps":5,"interval_ms":0,"fail_at":3}"#) == ["steps": "5", "interval_ms": "0", "fail_at": "3"])
        #expect(throws: ParamsError.self) { try validate(Self.demo, #"{"steps":5.0}"#) }
        #expect(throws: ParamsError.self) { try validate(Self.demo, #"{"steps":20000}"#) }
    }

    @Test func unknownDemoParamIsRefused() {
        #expect(throws: ParamsError.notAllowed("speed", kind: "demo")) { try validate(Self.demo, #"{"speed":"1"}"#) }
        #expect(throws: ParamsError.notAllowed("Steps", kind: "demo")) { try validate(Self.demo, #"{"Steps":"1"}"#) }
    }

    @Test func demoDefaultsAndValues() throws {
        let d = try DemoParams([:])
        #expect(d.steps == 10 && d.intervalMilliseconds == 1000 && d.failAt == nil)
        let e = try DemoParams(["steps": "3", "interval_ms": "250", "fail_at": "2"])
        #expect(e.steps == 3 && e.intervalMilliseconds == 250 && e.failAt == 2)
        #expect(DemoParams.ranges["steps"] == 1...10000)
        #expect(DemoParams.ranges["interval_ms"] == 0...60000)
    }

    @Test func noDefaultsAreAddedToTheEcho() throws {
        #expect(try validate(Self.demo, #"{"steps":"3"}"#) == ["steps": "3"])
    }

    @Test func messagesNameTheParam() {
        let errors: [ParamsError] = [.wrongType("p"), .notAllowed("p", kind: "k"), .noMatch("p"), .outOfRange("p", 1...2), .invalidValue("p", "x")]
        for e in errors {
            #expect(e.description.contains("'p'"))
            #expect(e.httpStatus == 422)
        }
        #expect(ParamsError.notAllowed("p", kind: "k").description.contains("'k'"))
    }
}
