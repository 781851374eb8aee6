import Glibc
import HeraldCore
import Testing
@testable import HeraldRunner

@Suite struct StatusThrottleTests {
    static func job(_ seq: Int) -> Job {
        var job = Job(id: JobID("01aaaaaaaaaaaaaaaaaaaaaaaa")!, kind: "demo", params: [:], now: Timestamp(milliseconds: 0))
        job.seq = seq
        return job
    }

    @Test func writesAtMostOncePerIntervalAndTheLatestWins() {
        var throttle = StatusThrottle(intervalMilliseconds: 50, lastWrite: 0)
        #expect(throttle.offer(Self.job(2), now: 10) == nil)  // too soon after the claim's write
        #expect(throttle.offer(Self.job(3), now: 20) == nil)
        #expect(throttle.deadline == 50)
        #expect(throttle.due(now: 49) == nil)
        #expect(throttle.due(now: 50)?.seq == 3)  // 2 was merged away
        #expect(throttle.deadline == nil)
        #expect(throttle.due(now: 500) == nil)
        #expect(throttle.offer(Self.job(4), now: 500)?.seq == 4)  // quiet for long: written at once
        #expect(throttle.offer(Self.job(5), now: 520) == nil)
        throttle.discardPending()
        #expect(throttle.due(now: 1000) == nil)
    }

    @Test func twentyAsecondAtMost() {
        var throttle = StatusThrottle(intervalMilliseconds: 50, lastWrite: 0)
        var writes = 0
        for now in stride(from: Int64(0), to: 1000, by: 1) {
            if throttle.offer(Self.job(Int(now)), now: now) != nil { writes += 1 }
        }
        #expect(writes == 19)  // at 50, 100, ... 950
        #expect(throttle.due(now: 1000)?.seq == 999)  // the last state is never lost
    }

    @Test func reportsWaitUnreadUntilTheIntervalIsOver() {
        var throttle = StatusThrottle(intervalMilliseconds: 50, lastWrite: 0)
        #expect(throttle.nextRead(now: 10) == 50)  // the claim wrote at 0: reports read now could only wait
        #expect(throttle.nextRead(now: 50) == nil)  // as they come
        #expect(throttle.offer(Self.job(2), now: 70)?.seq == 2)
        #expect(throttle.nextRead(now: 70) == 120)
        #expect(throttle.nextRead(now: 119) == 120)
        #expect(throttle.nextRead(now: 120) == nil)
    }

}

@Suite struct LineSplitterTests {
    @Test func splitsAcrossChunksAndKeepsTheLastPartialLine() {
        var splitter = LineSplitter()
        #expect(splitter.feed(Array("42 half".utf8)) == [])
        #expect(splitter.feed(Array(" way\n{\"progress\":".utf8)) == ["42 half way"])
        #expect(splitter.feed(Array(" 50}\n\n60".utf8)) == ["{\"progress\": 50}", ""])
        #expect(splitter.finish() == "60")
        #expect(splitter.finish() == nil)
    }

    @Test func dropsOverlongLinesWhole() {
        var splitter = LineSplitter(maxLineBytes: 8)
        #expect(splitter.feed(Array("0123456789abc\n12\n".utf8)) == ["12"])
    }
}

@Suite struct CommandEnvironmentTests {
    @Test func exactlyTheDocumentedVariables() {
        var job = Job(id: JobID("01aaaaaaaaaaaaaaaaaaaaaaaa")!, kind: "report", params: ["month": "2026-10", "Page_size": "a4"],
                      now: Timestamp(milliseconds: 0))
        job.attempt = 2
        let env = CommandProgram.environment(for: job)
        #expect(env.map { String($0.prefix { $0 != "=" }) } == [
            "PATH", "HOME", "LANG", "HERALD_JOB_ID", "HERALD_KIND", "HERALD_ATTEMPT", "HERALD_PROGRESS_FD",
            "HERALD_PARAM_PAGE_SIZE", "HERALD_PARAM_MONTH",
        ])
        #expect(env.contains("HERALD_ATTEMPT=2"))
        #expect(env.contains("HERALD_PARAM_MONTH=2026-10"))
        #expect(env.contains("HERALD_PROGRESS_FD=3"))
    }

    @Test func theLogMarkerNamesTheCap() {
        #expect(LogCap.marker(cap: 10 << 20) == Array("\n[herald: log truncated at 10 MiB]\n".utf8))
    }
}

@Suite struct JobTextTests {
    @Test func theBarShowsProgressAndTheMessageOrTheState() {
        var job = StatusThrottleTests.job(1)
        #expect(JobText.bar(job, width: 10) == "[..........]   0% queued")
        job.state = .running
        #expect(JobText.bar(job, width: 10) == "[..........]   0% running")  // no message yet
        job.progress = 42
        job.message = "step 4/10"
        #expect(JobText.bar(job, width: 10) == "[####......]  42% step 4/10")
        job.state = .succeeded
        job.progress = 100
        #expect(JobText.bar(job, width: 10) == "[##########] 100% succeeded")
    }
}

@Suite struct StopSignalsTests {
    @Test func sigtermOnceToEachThenSigkillToWhateverIsLeft() {
        var signals = StopSignals(graceMilliseconds: 1000)
        #expect(signals.killAt == nil)
        #expect(signals.signal(for: .group(10), now: 500) == SIGTERM)
        #expect(signals.killAt == 1500)
        #expect(signals.signal(for: .group(10), now: 600) == nil)  // it has had its SIGTERM
        #expect(signals.signal(for: .process(12), now: 900) == SIGTERM)  // handed over late: its own SIGTERM
        #expect(signals.signal(for: .process(12), now: 1499) == nil)
        #expect(signals.signal(for: .group(10), now: 1500) == SIGKILL)
        #expect(signals.signal(for: .group(10), now: 1600) == SIGKILL)  // every turn, while anything is left
        #expect(signals.signal(for: .process(13), now: 1600) == SIGKILL)  // found after the grace: no second grace
    }
}
