import HeraldCore
import HeraldPOSIX
import HeraldStore

/// One attempt of a claimed job, run on its own thread: runs the program, turns what happens into
/// job events, writes the states, and ends the claim. Handed to that thread and used only there.
final class Attempt: @unchecked Sendable {
    let store: any RunnerStore
    let kind: KindConfig
    let options: RunnerOptions
    let log: LogSink
    let stops: StopConditions
    /// The process's one waiter for children: the program's exit status comes from it.
    let reaper: ChildReaper
    /// The job as last changed by this attempt.
    private(set) var job: Job
    private let claim: any JobClaim
    private let writer: StatusWriter
    /// Whether reports changed the job since its state was last handed to the writer.
    private var unwritten = false

    init(store: any RunnerStore, claim: any JobClaim, kind: KindConfig, options: RunnerOptions, interrupt: InterruptFlag,
         reaper: ChildReaper) {
        self.store = store
        self.reaper = reaper
        self.claim = claim
        self.kind = kind
        self.options = options
        job = claim.job
        log = LogSink(path: store.logPath(for: claim.job.id), cap: options.logCapBytes)
        stops = StopConditions(store: store, id: claim.job.id, timeout: kind.timeout, interrupt: interrupt,
                               cancelPollMilliseconds: options.cancelPollMilliseconds)
        writer = StatusWriter(store: store, intervalMilliseconds: options.statusIntervalMilliseconds, now: Clock.monotonicMilliseconds())
    }

    static func now() -> Timestamp { Timestamp(milliseconds: Clock.wallMilliseconds()) }

    /// Runs the attempt to its end and releases the claim.
    func run() {
        // Checked again against today's config, here rather than under queue.lock (a regex may be slow):
        // the job may have been queued under another config, or by a runner that lacks the kind.
        // Refused params stay refused, so no retry.
        do { _ = try kind.validate(params: job.paramsJSON) } catch {
            log.close()
            finish(.aborted(JobError(.spawnFailed, "not started: \(error) (checked against the configuration before running)")), retries: 0)
            return
        }
        runnerLog(.info, "job \(job.id) (\(kind.name)) started, attempt \(job.attempt)")
        let event: JobEvent
        switch kind.executor {
        case let .command(argv): event = CommandProgram(argv: argv, attempt: self).run()
        case .demo: event = DemoProgram(attempt: self).run()
        }
        log.close()
        finish(event, retries: kind.retries)
    }

    /// A progress line from the program, applied to the job; `writeStatus` passes the result on (a report
    /// that changes nothing is not written).
    func report(_ report: ProgressReport) {
        guard let next = job.applying(.report(report), at: Attempt.now(), retries: kind.retries) else { return }
        job = next
        unwritten = true
    }

    /// Passes the job's state, if reports changed it, to the writer (written now, or when the interval since
    /// the last write is over), and writes a held-back state that is due. Programs call it after each batch
    /// of reports, never per report, and on every turn of their loop.
    func writeStatus(now: Int64) {
        if unwritten {
            unwritten = false
            writer.update(job, now: now)
        } else {
            writer.flushIfDue(now: now)
        }
    }

    /// When programs read reports next: nil as they come, else at this time (until then they could only wait).
    func nextReportRead(now: Int64) -> Int64? { writer.nextRead(now: now) }

    /// Records the program's process group with the claim, for recovery after a crash of this runner.
    func recordProcessGroup(_ group: Int32) { claim.recordProcessGroup(group) }

    /// How long a program's loop may sleep: until the first of `deadlines` or a due status write, at most 100 ms.
    func waitMilliseconds(now: Int64, deadlines: [Int64?]) -> Int32 {
        var first = writer.deadline ?? .max
        for case let deadline? in deadlines where deadline < first { first = deadline }
        return Int32(max(0, min(100, first - now)))
    }

    /// The event ending an attempt stopped for `reason`.
    func event(for reason: StopReason) -> JobEvent {
        switch reason {
        case .cancel: return .cancel
        case .interrupted: return .interrupted
        case .timeout: return .aborted(JobError(.timeout, "stopped after its timeout of \(kind.timeout?.description ?? "?")"))
        }
    }

    private func finish(_ event: JobEvent, retries: Int) {
        guard let next = job.applying(event, at: Attempt.now(), retries: retries) else {
            preconditionFailure("a running job accepts every ending event")
        }
        do {
            // Durable before anything else moves: the claim's release lets other runners act on it.
            try writer.finish(next)
            if event == .cancel { store.clearCancelRequest(next.id) }
            if next.state == .queued { try store.enqueue(next.id) }
        } catch {
            // Releasing would remove the lock file recovery looks for: leave the job to it instead.
            runnerLog(.error, "job \(next.id) (\(kind.name)): final state not written, left to recovery: \(error)")
            claim.abandon()
            return
        }
        job = next
        claim.release()
        describeEnd()
    }

    private func describeEnd() {
        let name = "job \(job.id) (\(kind.name))"
        switch job.state {
        case .succeeded: runnerLog(.info, "\(name) succeeded, attempt \(job.attempt)")
        case .canceled: runnerLog(.info, "\(name) canceled on request")
        case .failed: runnerLog(.warning, "\(name) failed, attempt \(job.attempt): \(job.error?.message ?? "unknown")")
        case .queued: runnerLog(.info, "\(name) back in the queue for attempt \(job.attempt): \(job.message ?? "")")
        case .running: break  // no ending event leaves a job running
        }
    }
}
