import Testing
@testable import HeraldCore

@Suite struct JobIDTests {
    static let alphabet = Set("0123456789abcdefghjkmnpqrstvwxyz")

    static func random(_ seed: UInt8) -> [UInt8] { (0..<10).map { UInt8(truncatingIfNeeded: Int($0) * 37 + Int(seed)) } }

    @Test(arguments: [UInt64(0), 1, 1_764_064_800_123, 0xFFFF_FFFF_FFFF, 4_102_444_799_999])
    func builtIDsAreValidAndCarryTheirTime(ms: UInt64) throws {
        let id = JobID(milliseconds: ms, random: Self.random(7))
        #expect(id.text.count == 26)
        #expect(id.text.utf8.count == 26)
        #expect(id.text.allSatisfy { Self.alphabet.contains($0) })
        #expect(id.milliseconds == ms)
        let reparsed = try #require(JobID(id.text))
        #expect(reparsed == id)
        #expect(reparsed.milliseconds == ms)
        #expect(id.description == id.text)
    }

    @Test func knownEncoding() {
        // ULID layout: time 0 and random bytes 0 give 26 zeros; all ones give the top value.
        #expect(JobID(milliseconds: 0, random: Array(repeating: 0, count: 10)).text == String(repeating: "0", count: 26))
        #expect(JobID(milliseconds: 0xFFFF_FFFF_FFFF, random: Array(repeating: 0xFF, count: 10)).text
            == "7" + String(repeating: "z", count: 25))
        // Time 1 ms is the last bit of the 10-character time prefix.
        #expect(JobID(milliseconds: 1, random: Array(repeating: 0, count: 10)).text.prefix(10) == "0000000001")
        // The random part is the last 16 characters.
        let a = JobID(milliseconds: 5, random: Array(repeating: 0, count: 10))
        let b = JobID(milliseconds: 5, random: [0, 0, 0, 0, 0, 0, 0, 0, 0, 1])
        #expect(a.text.prefix(10) == b.text.prefix(10))
        #expect(b.text.last == "1")
    }

    @Test func exactlyTheAlphabetsBytesAreAccepted() {
        let alphabetBytes = Set("0123456789abcdefghjkmnpqrstvwxyz".utf8)
        for byte in UInt8.min...UInt8.max {
            #expect(JobID.isAlphabetByte(byte) == alphabetBytes.contains(byte), "byte \(byte)")
            #expect((JobID(String(repeating: "0", count: 25) + String(decoding: [byte], as: UTF8.self)) != nil)
                == alphabetBytes.contains(byte), "byte \(byte)")
        }
    }

    @Test func differentRandomGivesDifferentIDs() {
        let a = JobID(milliseconds: 99, random: Self.random(1))
        let b = JobID(milliseconds: 99, random: Self.random(2))
        #expect(a != b)
        #expect(a.milliseconds == b.milliseconds)
    }

    @Test func idsSortByTime() {
        let times: [UInt64] = [5, 1_000, 1_764_064_800_123, 1_764_064_800_124, 31, 0xFFFF_FFFF_FFFF, 32, 1]
        // The largest random part at an earlier time still sorts first.
        let ids = times.enumerated().map { JobID(milliseconds: $0.element, random: $0.offset % 2 == 0 ? Array(repeating: 0xFF, count: 10) : Array(repeating: 0, count: 10)) }
        #expect(ids.sorted().map(\.milliseconds) == times.sorted())
        #expect(ids.sorted().map(\.text) == ids.map(\.text).sorted())
    }

    @Test(arguments: [
        "", "0", String(repeating: "0", count: 25), String(repeating: "0", count: 27),
        "01JDQ5Z8V3K4M5N6P7Q8R9S0TA",          // uppercase
        "01jdq5z8v3k4m5n6p7q8r9s0ti",          // i
        "01jdq5z8v3k4m5n6p7q8r9s0tl",          // l
        "01jdq5z8v3k4m5n6p7q8r9s0to",          // o
        "01jdq5z8v3k4m5n6p7q8r9s0tu",          // u
        "../../../../../etc/passwd00",
        "../" + String(repeating: "0", count: 23),
        String(repeating: "0", count: 24) + "é",  // 26 bytes? no: 24 + 2 bytes = 26 bytes of UTF-8
        String(repeating: "0", count: 25) + "é",
        String(repeating: "0", count: 25) + " ",
        String(repeating: "0", count: 25) + "\n",
        String(repeating: "0", count: 25) + "\u{0}",
        String(repeating: "0", count: 25) + "/",
        String(repeating: "０", count: 26),       // fullwidth digits
    ])
    func invalidTextsAreRefused(text: String) {
        #expect(JobID(text) == nil)
    }

    @Test func validTextIsAccepted() throws {
        let text = "01jdq5z8v3k4m5n6p7q8r9s0tx"
        let id = try #require(JobID(text))
        #expect(id.text == text)
        // A substring works too (the router hands over path pieces).
        let path = "/jobs/\(text)/events"
        #expect(JobID(path.split(separator: "/")[1]) == id)
    }

    @Test func aSequenceIncreasesWithinAMillisecondAndWhenTheClockStepsBack() {
        var sequence = JobIDSequence()
        // Random parts that sort downwards: only the time part can keep the order.
        let ids = [(1_000, 9), (1_000, 8), (1_000, 7), (999, 6), (1_010, 5), (1_010, 4)].map { now, seed in
            sequence.next(nowMilliseconds: UInt64(now), random: Array(repeating: UInt8(seed), count: 10))
        }
        #expect(ids.map(\.milliseconds) == [1_000, 1_001, 1_002, 1_003, 1_010, 1_011])
        #expect(ids == ids.sorted())
        // The random part is kept whole: the IDs stay unguessable from a neighbour.
        #expect(ids.map { $0.text.suffix(16) } == [9, 8, 7, 6, 5, 4].map {
            JobID(milliseconds: 0, random: Array(repeating: UInt8($0), count: 10)).text.suffix(16)
        })
    }
}
