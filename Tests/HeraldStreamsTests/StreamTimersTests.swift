@testable import HeraldStreams
import Testing

@Suite struct StreamTimersTests {
    @Test func streamsComeDueInDeadlineOrderAndOnlyWhenDue() {
        var timers = StreamTimers()
        for (token, at) in [(1, 300), (2, 100), (3, 200), (4, 100)] as [(UInt64, Int64)] { timers.arm(token, at: at) }
        #expect(timers.nextDeadline() == 100)
        #expect(timers.popDue(now: 99, limit: 10).isEmpty)
        #expect(Set(timers.popDue(now: 100, limit: 10)) == [2, 4])
        #expect(timers.popDue(now: 250, limit: 10) == [3])
        #expect(timers.nextDeadline() == 300)
        #expect(timers.popDue(now: 1000, limit: 10) == [1])
        #expect(timers.nextDeadline() == nil && timers.count == 0)
    }

    @Test func theEarliestArmedDeadlineCountsAndADisarmedStreamNeverComesDue() {
        var timers = StreamTimers()
        timers.arm(1, at: 500)
        timers.arm(1, at: 900)  // later: the 500 stays, and the hub arms the next one then
        timers.arm(1, at: 200)  // earlier: it replaces the 500
        timers.arm(2, at: 100)
        timers.disarm(2)
        #expect(timers.nextDeadline() == 200)
        #expect(timers.popDue(now: 1000, limit: 10) == [1], "one entry per stream, whatever was armed before")
        #expect(timers.nextDeadline() == nil)
    }

    @Test func aRoundTakesAtMostItsLimitAndTheRestStaysDue() {
        var timers = StreamTimers()
        for token in 0..<1000 as Range<UInt64> { timers.arm(token, at: 5) }
        #expect(timers.popDue(now: 5, limit: 256).count == 256)
        #expect(timers.nextDeadline() == 5)
        var left = 0
        while !timers.popDue(now: 5, limit: 256).isEmpty { left += 1 }
        #expect(left == 3 && timers.count == 0)
    }
}
