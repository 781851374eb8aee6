import Testing
@testable import HeraldCore

@Suite struct JobTransitionTests {
    typealias F = Fixture

    static let allEvents: [JobEvent] = [
        .start, .report(ProgressReport(progress: 50)), .report(ProgressReport(message: "m")),
        .exited(status: 0), .exited(status: 1), .aborted(JobError(.timeout, "t")),
        .aborted(JobError(.runnerLost, "lost")), .cancel, .interrupted,
    ]

    static func job(in state: JobState) -> Job {
        switch state {
        case .queued: return F.queued()
        case .running: return F.running()
        case .succeeded: return F.running().applying(.exited(status: 0), at: F.at(20), retries: 0)!
        case .failed: return F.running().applying(.exited(status: 2), at: F.at(20), retries: 0)!
        case .canceled: return F.running().applying(.cancel, at: F.at(20), retries: 0)!
        }
    }

    /// Which events each state accepts (a report is accepted when it changes something).
    static func allowed(_ state: JobState, _ event: JobEvent) -> Bool {
        switch (state, event) {
        case (.queued, .start), (.queued, .cancel): return true
        case (.running, .start): return false
        case (.running, _): return true
        default: return false
        }
    }

    @Test func freshJob() {
        let job = F.queued()
        #expect(job.state == .queued)
        #expect(job.seq == 1)
        #expect(job.attempt == 1)
        #expect(job.progress == 0)
        #expect(job.createdAt == F.t0 && job.updatedAt == F.t0)
        #expect(job.startedAt == nil && job.finishedAt == nil && job.exitCode == nil && job.error == nil && job.result == nil)
    }

    @Test(arguments: JobState.allCases)
    func transitionTable(state: JobState) {
        let job = Self.job(in: state)
        for event in Self.allEvents {
            let next = job.applying(event, at: F.at(100), retries: 0)
            if Self.allowed(state, event) {
                #expect(next != nil, "\(state) should accept \(event)")
                if let next {
                    #expect(next.seq == job.seq + 1)
                    #expect(next.updatedAt == F.at(100))
                    #expect(next.id == job.id && next.kind == job.kind && next.params == job.params && next.createdAt == job.createdAt)
                }
            } else {
                #expect(next == nil, "\(state) should refuse \(event)")
            }
        }
    }

    @Test(arguments: [JobState.succeeded, .failed, .canceled])
    func terminalJobsRefuseEverything(state: JobState) {
        #expect(state.isTerminal)
        let job = Self.job(in: state)
        for event in Self.allEvents {
            #expect(job.applying(event, at: F.at(1000), retries: 5) == nil)
        }
    }

    @Test func nonTerminalStates() {
        #expect(!JobState.queued.isTerminal)
        #expect(!JobState.running.isTerminal)
        #expect(JobState.allCases.map(\.rawValue) == ["queued", "running", "succeeded", "failed", "canceled"])
    }

    @Test func start() throws {
        let next = try #require(F.queued().applying(.start, at: F.at(10), retries: 0))
        #expect(next.state == .running)
        #expect(next.startedAt == F.at(10))
        #expect(next.progress == 0)
        #expect(next.seq == 2)
        #expect(next.attempt == 1)
        #expect(next.finishedAt == nil)
    }

    @Test func reportOnQueuedJobIsRefused() {
        #expect(F.queued().applying(.report(ProgressReport(progress: 10, message: "x")), at: F.at(5), retries: 0) == nil)
        #expect(F.queued().applying(.exited(status: 0), at: F.at(5), retries: 0) == nil)
        #expect(F.queued().applying(.aborted(JobError(.runnerLost, "x")), at: F.at(5), retries: 0) == nil)
        #expect(F.queued().applying(.interrupted, at: F.at(5), retries: 0) == nil)
    }

    @Test func reportsUpdateProgressMessageAndResult() throws {
        var job = F.running()
        job = try #require(job.applying(.report(ProgressReport(progress: 42, message: "rendering page 4")), at: F.at(20), retries: 0))
        #expect(job.progress == 42)
        #expect(job.message == "rendering page 4")
        #expect(job.state == .running)
        job = try #require(job.applying(.report(ProgressReport(progress: 50)), at: F.at(30), retries: 0))
        #expect(job.progress == 50)
        #expect(job.message == "rendering page 4") // kept when the report has none
        job = try #require(job.applying(.report(ProgressReport(result: .object([("url", .string("/r.pdf"))]))), at: F.at(40), retries: 0))
        #expect(job.result?["url"] == .string("/r.pdf"))
        #expect(job.progress == 50)
    }

    @Test(arguments: [(-5.0, 0.0), (0.0, 0.0), (12.5, 12.5), (100.0, 100.0), (150.0, 100.0), (1e9, 100.0)])
    func progressIsClamped(reported: Double, expected: Double) {
        let start = F.running().applying(.report(ProgressReport(message: "go")), at: F.at(15), retries: 0)!
        let next = start.applying(.report(ProgressReport(progress: reported, message: "now")), at: F.at(20), retries: 0)
        #expect(next?.progress == expected)
    }

    @Test func progressNeverDecreasesWithinAnAttempt() throws {
        var job = F.running()
        var seen: [Double] = []
        for (k, p) in [10.0, 30, 20, 30, 5, 70, 69.9, 100, 50].enumerated() {
            if let next = job.applying(.report(ProgressReport(progress: p, message: "step \(k)")), at: F.at(Int64(20 + k)), retries: 0) {
                #expect(next.progress >= job.progress)
                job = next
                seen.append(job.progress)
            }
        }
        #expect(seen == [10, 30, 30, 30, 30, 70, 70, 100, 100])
    }

    @Test func reportThatChangesNothingIsNoChange() throws {
        let job = try #require(F.running().applying(.report(ProgressReport(progress: 40, message: "m")), at: F.at(20), retries: 0))
        #expect(job.applying(.report(ProgressReport(progress: 40, message: "m")), at: F.at(30), retries: 0) == nil)
        #expect(job.applying(.report(ProgressReport(progress: 10)), at: F.at(30), retries: 0) == nil) // lower: ignored
        #expect(job.applying(.report(ProgressReport()), at: F.at(30), retries: 0) == nil)
    }

    @Test func seqStrictlyRisesThroughALife() throws {
        var job = F.queued()
        var seqs = [job.seq]
        let events: [JobEvent] = [
            .start, .report(ProgressReport(progress: 10)), .exited(status: 3), // retry
            .start, .report(ProgressReport(progress: 5)), .interrupted,        // back to queue
            .start, .report(ProgressReport(progress: 60, message: "x")), .aborted(JobError(.runnerLost, "lost")), // retry
            .start, .exited(status: 0),
        ]
        for (k, event) in events.enumerated() {
            job = try #require(job.applying(event, at: F.at(Int64(10 * (k + 1))), retries: 2), "\(event)")
            seqs.append(job.seq)
        }
        #expect(job.state == .succeeded)
        #expect(job.attempt == 3)
        #expect(zip(seqs, seqs.dropFirst()).allSatisfy { $0 < $1 })
    }

    @Test func updatedAtNeverGoesBack() throws {
        let job = F.running()
        let next = try #require(job.applying(.report(ProgressReport(progress: 1)), at: Timestamp(milliseconds: 0), retries: 0))
        #expect(next.updatedAt == job.updatedAt)
    }

    @Test func success() throws {
        let job = try #require(F.running().applying(.report(ProgressReport(progress: 30)), at: F.at(20), retries: 0))
        let done = try #require(job.applying(.exited(status: 0), at: F.at(50), retries: 0))
        #expect(done.state == .succeeded)
        #expect(done.progress == 100)
        #expect(done.exitCode == 0)
        #expect(done.error == nil)
        #expect(done.finishedAt == F.at(50))
        #expect(done.seq == job.seq + 1)
    }

    @Test func successAfterARetryClearsTheError() throws {
        var job = F.running()
        job = try #require(job.applying(.exited(status: 1), at: F.at(20), retries: 1))
        #expect(job.error?.code == .exitStatus)
        job = try #require(job.applying(.start, at: F.at(30), retries: 1))
        job = try #require(job.applying(.exited(status: 0), at: F.at(40), retries: 1))
        #expect(job.state == .succeeded)
        #expect(job.error == nil)
        #expect(job.exitCode == 0)
    }

    @Test func failureWithRetriesLeftGoesBackToTheQueue() throws {
        let job = try #require(F.running().applying(.report(ProgressReport(progress: 60)), at: F.at(20), retries: 1))
        let next = try #require(job.applying(.exited(status: 2), at: F.at(30), retries: 1))
        #expect(next.state == .queued)
        #expect(next.attempt == 2)
        #expect(next.progress == 0)
        #expect(next.finishedAt == nil)
        #expect(next.error?.code == .exitStatus)
        #expect(next.seq == job.seq + 1)
        // The new attempt may report lower progress than the old one did.
        let again = try #require(next.applying(.start, at: F.at(40), retries: 1))
        let low = try #require(again.applying(.report(ProgressReport(progress: 5)), at: F.at(50), retries: 1))
        #expect(low.progress == 5)
    }

    @Test func failureWithoutRetriesEndsTheJob() throws {
        let next = try #require(F.running().applying(.exited(status: 2), at: F.at(30), retries: 0))
        #expect(next.state == .failed)
        #expect(next.exitCode == 2)
        #expect(next.error?.code == .exitStatus)
        #expect(next.error?.message.isEmpty == false)
        #expect(next.finishedAt == F.at(30))
        #expect(next.attempt == 1)
    }

    @Test(arguments: [0, 1, 2, 5])
    func aKindGetsOnePlusRetriesAttempts(retries: Int) throws {
        var job = F.queued()
        var attempts = 0
        while !job.state.isTerminal {
            job = try #require(job.applying(.start, at: F.at(Int64(attempts * 10 + 1)), retries: retries))
            attempts += 1
            #expect(job.attempt == attempts)
            job = try #require(job.applying(.exited(status: 1), at: F.at(Int64(attempts * 10 + 5)), retries: retries))
        }
        #expect(attempts == retries + 1)
        #expect(job.state == .failed)
    }

    @Test(arguments: [JobError.Code.timeout, .runnerLost, .spawnFailed])
    func abortedAttempts(code: JobError.Code) throws {
        let failed = try #require(F.running().applying(.aborted(JobError(code, "why")), at: F.at(30), retries: 0))
        #expect(failed.state == .failed)
        #expect(failed.error == JobError(code, "why"))
        #expect(failed.finishedAt == F.at(30))
        #expect(failed.exitCode == nil)

        let retried = try #require(F.running().applying(.aborted(JobError(code, "why")), at: F.at(30), retries: 1))
        #expect(retried.state == .queued)
        #expect(retried.attempt == 2)
        #expect(retried.error?.code == code)
    }

    @Test func runnerLost() throws {
        let lost = try #require(F.running().applying(.aborted(JobError(.runnerLost, "the runner died")), at: F.at(30), retries: 0))
        #expect(lost.state == .failed)
        #expect(lost.error?.code.rawValue == "runner_lost")
    }

    @Test(arguments: [JobState.queued, .running])
    func cancel(state: JobState) throws {
        let job = Self.job(in: state)
        let canceled = try #require(job.applying(.cancel, at: F.at(70), retries: 3))
        #expect(canceled.state == .canceled)
        #expect(canceled.error?.code == .canceled)
        #expect(canceled.error?.code.rawValue == "canceled")
        #expect(canceled.finishedAt == F.at(70))
        #expect(canceled.seq == job.seq + 1)
        #expect(canceled.applying(.cancel, at: F.at(80), retries: 3) == nil)
    }

    @Test func interruptedGoesBackToTheQueueWithoutCountingTheAttempt() throws {
        let job = try #require(F.running().applying(.report(ProgressReport(progress: 80)), at: F.at(20), retries: 0))
        let back = try #require(job.applying(.interrupted, at: F.at(30), retries: 0))
        #expect(back.state == .queued)
        #expect(back.attempt == 1)
        #expect(back.progress == 0)
        #expect(back.finishedAt == nil)
        #expect(back.error == nil)
        #expect(back.seq == job.seq + 1)
        // It can run again, still attempt 1, and a retries-0 failure then ends it.
        let again = try #require(back.applying(.start, at: F.at(40), retries: 0))
        #expect(again.attempt == 1)
    }

    @Test func errorCodesMatchTheContract() {
        #expect(JobError.Code.exitStatus.rawValue == "exit_status")
        #expect(JobError.Code.timeout.rawValue == "timeout")
        #expect(JobError.Code.runnerLost.rawValue == "runner_lost")
        #expect(JobError.Code.spawnFailed.rawValue == "spawn_failed")
        #expect(JobError.Code.canceled.rawValue == "canceled")
    }
}
