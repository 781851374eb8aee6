import Testing
@testable import HeraldCore

@Suite struct TimestampTests {
    // Known values checked with `date -u -d @S +%Y-%m-%dT%H:%M:%S.%3NZ` and Python's datetime.
    @Test(arguments: [
        (Int64(0), "1970-01-01T00:00:00.000Z"),
        (1, "1970-01-01T00:00:00.001Z"),
        (999, "1970-01-01T00:00:00.999Z"),
        (86_399_999, "1970-01-01T23:59:59.999Z"),
        (1_764_064_800_123, "2025-11-25T10:00:00.123Z"),
        (951_782_400_000, "2000-02-29T00:00:00.000Z"),
        (1_709_164_800_000, "2024-02-29T00:00:00.000Z"),
        (4_102_444_799_999, "2099-12-31T23:59:59.999Z"),
        (1_798_193_204_456, "2026-12-25T10:06:44.456Z"),
    ])
    func knownValues(ms: Int64, text: String) throws {
        #expect(Timestamp(milliseconds: ms).rfc3339 == text)
        let parsed = try #require(Timestamp(rfc3339: text))
        #expect(parsed.milliseconds == ms)
    }

    @Test func roundTripAcrossYears() throws {
        var ms: Int64 = 0
        while ms < 4_102_444_800_000 {
            let text = Timestamp(milliseconds: ms).rfc3339
            #expect(text.utf8.count == 24)
            #expect(Timestamp(rfc3339: text)?.milliseconds == ms, "\(text)")
            ms += 7_776_000_123 // about 90 days and a bit, to move through every field
        }
    }

    @Test func fractionsOfOtherLengths() {
        #expect(Timestamp(rfc3339: "2025-11-25T10:00:00Z")?.milliseconds == 1_764_064_800_000)
        #expect(Timestamp(rfc3339: "2025-11-25T10:00:00.1Z")?.milliseconds == 1_764_064_800_100)
        #expect(Timestamp(rfc3339: "2025-11-25T10:00:00.12Z")?.milliseconds == 1_764_064_800_120)
        #expect(Timestamp(rfc3339: "2025-11-25T10:00:00.123456Z")?.milliseconds == 1_764_064_800_123)
        #expect(Timestamp(rfc3339: "2025-11-25T10:00:00.123456789Z")?.milliseconds == 1_764_064_800_123)
    }

    @Test(arguments: [
        "", "2025-11-25", "2025-11-25T10:00:00", "2025-11-25T10:00:00.123", "2025-11-25 10:00:00.123Z",
        "2025-11-25T10:00:00.Z", "2025-13-25T10:00:00.000Z", "2025-00-25T10:00:00.000Z", "2025-11-32T10:00:00.000Z",
        "2025-11-25T24:00:00.000Z", "2025-11-25T10:60:00.000Z", "2025-11-25T10:00:00.000+01:00",
        "2025-11-25T10:00:00,123Z", "2025-11-25T10:00:00.12aZ", "20x5-11-25T10:00:00.000Z", "2025/11/25T10:00:00.000Z",
        "2025-11-25T10:00:00.123z",
    ])
    func malformedTextIsRefused(text: String) {
        #expect(Timestamp(rfc3339: text) == nil)
    }

    @Test func longFractionDoesNotCrash() {
        // Untrusted text (a damaged status file) must be refused or read, never trap.
        let text = "2025-11-25T10:00:00." + String(repeating: "9", count: 40) + "Z"
        #expect(Timestamp(rfc3339: text) == nil)
    }

    @Test func ordering() {
        #expect(Timestamp(milliseconds: 1) < Timestamp(milliseconds: 2))
        #expect(Timestamp(milliseconds: 5) == Timestamp(milliseconds: 5))
        #expect(!(Timestamp(milliseconds: 5) < Timestamp(milliseconds: 5)))
    }
}
