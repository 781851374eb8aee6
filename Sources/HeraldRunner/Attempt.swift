import HeraldCore
import HeraldPOSIX
import HeraldStore

/// One attempt of a claimed job, run on its own thread: runs the program, turns what happens into
/// job events, writes the states, and ends the claim. Handed to that thread and used only there.
final class Attempt: @unchecked Sendable {
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

    init(claim: any JobClaim, kind: KindConfig, options: RunnerOptions, interrupt: StopFlag, cancel: StopFlag, claimLost: StopFlag,
         reaper: ChildReaper) {
        self.reaper = reaper
        self.claim = claim
        self.kind = kind
        self.options = options
        job = claim.job
        stops = StopConditions(timeout: kind.timeout, interrupt: interrupt, cancel: cancel, claimLost: claimLost)
        log = LogSink(claim: claim, cap: options.logCapBytes, claimLost: stops.claimLost)
        writer = StatusWriter(claim: claim, claimLost: stops.claimLost, intervalMilliseconds: options.statusIntervalMilliseconds,
                              now: Clock.monotonicMilliseconds())
    }

    static func now() -> Timestamp { Timestamp(milliseconds: Clock.wallMilliseconds()) }

    /// Runs the attempt to its end and ends the claim.
    func run() {
        // A request made before the claim has reached no watcher of this attempt: looked up once here.
        do { if try claim.isCancelRequested() { stops.cancel.raise() } } catch {
            if case .claimLost = error { stops.claimLost.raise() }
            runnerLog(.warning, "job \(job.id): cannot look for a cancel request: \(error)")
        }
        // Checked again against today's config, here rather than under queue.lock (a regex may be slow):
        // the job may have been queued under another config, or by a runner that lacks the kind.
        // Refused params stay refused, so no retry.
        do { _ = try kind.validate(params: job.paramsJSON) } catch {
            finish(.aborted(JobError(.spawnFailed, "not started: \(error) (checked against the configuration before running)")), retries: 0)
            return
        }
        runnerLog(.info, "job \(job.id) (\(kind.name)) started, attempt \(job.attempt)")
        let event: JobEvent
        switch kind.executor {
        case let .command(argv): event = CommandProgram(argv: argv, attempt: self).run()
        case .demo: event = DemoProgram(attempt: self).run()
        }
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
        // At most 100 ms: a cancel or shutdown flag raised by the scheduler is seen within that.
        return Int32(max(0, min(100, first - now)))
    }

    /// The event ending an attempt stopped for `reason`.
    func event(for reason: StopReason) -> JobEvent {
        switch reason {
        case .cancel: return .cancel
        case .interrupted: return .interrupted
        case .timeout: return .aborted(JobError(.timeout, "stopped after its timeout of \(kind.timeout?.description ?? "?")"))
        case .claimLost: return .interrupted  // never written: `finish` writes nothing after a lost claim
        }
    }

    private func finish(_ event: JobEvent, retries: Int) {
        guard !stops.claimLost.isRaised else { return endLost() }
        guard let next = job.applying(event, at: Attempt.now(), retries: retries) else {
            preconditionFailure("a running job accepts every ending event")
        }
        do { try writer.finish(next) } catch {
            if case .claimLost = error { return endLost() }
            // The claim stays for recovery to find the job by: nothing is lost, it is retried or failed.
            runnerLog(.error, "job \(next.id) (\(kind.name)): final state not written, left to recovery: \(error)")
            claim.abandon()
            return
        }
        job = next
        describeEnd()
    }

    /// Ends an attempt whose claim another runner took over: its program is stopped, nothing more is written.
    private func endLost() {
        runnerLog(.warning, "job \(job.id) (\(kind.name)): another runner took the job over; attempt \(job.attempt) stopped, "
            + "its last states not written")
        claim.abandon()
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
