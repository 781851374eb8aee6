@testable import HeraldStreams
import Testing

/// A stream's deadlines on a fake clock: `now` is whatever the test says.
@Suite struct StreamScheduleTests {
    @Test func aPingFallsDueEveryHeartbeatAndAStalledLoopSendsOneNotABurst() {
        var schedule = StreamSchedule(now: 0, heartbeat: 1000, writeDeadline: 10_000)
        #expect(schedule.nextDeadline == 1000)
        #expect(schedule.due(now: 999) == .nothing)
        #expect(schedule.due(now: 1000) == .ping)
        #expect(schedule.due(now: 1000) == .nothing)
        #expect(schedule.nextDeadline == 2000)
        #expect(schedule.due(now: 5500) == .ping)  // four heartbeats late: one ping, then the cadence again
        #expect(schedule.due(now: 5600) == .nothing)
        #expect(schedule.nextDeadline == 6000)
    }

    @Test func aBlockedStreamIsDroppedAtTheWriteDeadlineAndNotPingedMeanwhile() {
        var schedule = StreamSchedule(now: 0, heartbeat: 1000, writeDeadline: 10_000)
        schedule.didBlock(now: 1500)
        schedule.didBlock(now: 4000)  // still blocked: the deadline runs from the first report
        var actions: [StreamSchedule.Action] = []
        var now: Int64 = 0
        while actions.last.map({ $0 == .nothing }) ?? true, actions.count < 100 {
            now = schedule.nextDeadline
            actions.append(schedule.due(now: now))
        }
        #expect(now == 11_500)
        #expect(actions.last == .drop(blockedFor: 10_000))
        #expect(actions.dropLast().allSatisfy { $0 == .nothing }, "no ping to a blocked stream: \(actions)")
    }

    @Test func aStreamThatDrainsBeforeTheDeadlineIsKept() {
        var schedule = StreamSchedule(now: 0, heartbeat: 60_000, writeDeadline: 10_000)
        schedule.didBlock(now: 100)
        #expect(schedule.nextDeadline == 10_100)
        schedule.didDrain()
        #expect(schedule.due(now: 10_100) == .nothing)
        #expect(schedule.nextDeadline == 60_000)
        schedule.didBlock(now: 20_000)  // blocked again: a new deadline from then
        #expect(schedule.due(now: 29_999) == .nothing)
        #expect(schedule.due(now: 30_000) == .drop(blockedFor: 10_000))
    }

    @Test func aLapsedReadTokenEndsTheStreamOrClosesItWhenBlocked() {
        var open = StreamSchedule(now: 0, heartbeat: 1000, writeDeadline: 10_000, lapseAt: 2500)
        #expect(open.due(now: 1000) == .ping)
        #expect(open.due(now: 2000) == .ping)
        #expect(open.nextDeadline == 2500)
        #expect(open.due(now: 2500) == .endLapsed)
        var blocked = StreamSchedule(now: 0, heartbeat: 1000, writeDeadline: 10_000, lapseAt: 2500)
        blocked.didBlock(now: 2400)
        #expect(blocked.due(now: 2500) == .closeLapsed)
        #expect(StreamSchedule(now: 0, heartbeat: 1000, writeDeadline: 500).nextDeadline == 1000, "no lapse, not blocked")
    }
}
