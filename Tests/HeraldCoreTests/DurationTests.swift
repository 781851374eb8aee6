import Testing
@testable import HeraldCore

@Suite struct DurationTests {
    @Test(arguments: [
        ("500ms", Int64(500)), ("15s", 15_000), ("30m", 1_800_000), ("2h", 7_200_000), ("7d", 604_800_000),
        ("0s", 0), ("0ms", 0), ("1ms", 1), ("1s", 1000), ("1m", 60_000), ("1h", 3_600_000), ("1d", 86_400_000),
        ("007s", 7000), ("3600s", 3_600_000),
    ])
    func parses(text: String, ms: Int64) throws {
        let d = try #require(HeraldDuration(parsing: text))
        #expect(d.milliseconds == ms)
    }

    @Test(arguments: [
        "5", "s", "ms", "1.5s", "-1s", "+1s", "10x", "", " 5s", "5s ", "5 s", "5S", "5MS", "5sec", "5min", "1h30m",
        "5mss", "1e3ms", "٥s", "5\ns", "9999999999999s",
    ])
    func refuses(text: String) {
        #expect(HeraldDuration(parsing: text) == nil)
    }

    @Test(arguments: ["999999999999d", "999999999999h", "999999999999m", "999999999999s"])
    func hugeValuesDoNotCrash(text: String) {
        // Out of Int64 milliseconds once scaled: refused rather than overflowing.
        if let d = HeraldDuration(parsing: text) {
            #expect(d.milliseconds > 0)
        }
    }

    @Test func largestDays() {
        #expect(HeraldDuration(parsing: "999999999999d") == nil)
        #expect(HeraldDuration(parsing: "999999999999ms")?.milliseconds == 999_999_999_999)
        #expect(HeraldDuration(parsing: "999999999999s")?.milliseconds == 999_999_999_999_000)
    }

    @Test(arguments: [
        (Int64(500), "500ms"), (15_000, "15s"), (1_800_000, "30m"), (7_200_000, "2h"), (604_800_000, "7d"),
        (0, "0ms"), (1500, "1500ms"), (90_000, "90s"), (86_400_000, "1d"),
    ])
    func description(ms: Int64, text: String) {
        let d = HeraldDuration(milliseconds: ms)
        #expect(d.description == text)
        #expect(HeraldDuration(parsing: d.description) == d)
    }

    @Test func helpers() {
        #expect(HeraldDuration.seconds(3).milliseconds == 3000)
        #expect(HeraldDuration(milliseconds: 1500).seconds == 1.5)
        #expect(HeraldDuration(milliseconds: 1) < HeraldDuration(milliseconds: 2))
    }
}
