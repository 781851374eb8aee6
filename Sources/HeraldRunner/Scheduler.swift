import Foundation
import Glibc
import HeraldCore
import HeraldPOSIX
import HeraldStore
import Synchronization

/// Claims queued jobs and runs each on its own thread, up to `workers` at once; `concurrency`
/// per kind is the store's business (slot locks across processes).
///
/// Every turn: ingest submissions, recover jobs of dead runners, cancel queued jobs asked to stop,
/// claim. `drain` returns when nothing is claimable and nothing runs here; `daemon` waits on the
/// store watcher (submissions, cancel requests) and rescans every second for crash recovery.
/// In both modes the watcher's cancel requests reach the running attempts: no attempt polls the store.
/// On SIGTERM or SIGINT both stop claiming, let running jobs finish for the shutdown grace, then
/// stop the rest and put them back in the queue.
public final class Scheduler: Sendable {
    /// How long the scheduler runs.
    public enum Mode: Sendable {
        /// `herald-runner run`: drain the queue, then return.
        case drain
        /// `herald-runner work`: wait for jobs until SIGTERM.
        case daemon
    }

    private let store: any RunnerStore
    private let kinds: [String: KindConfig]
    private let options: RunnerOptions
    private let wake: EventFD
    private let stopRequested = Atomic<Bool>(false)
    private let running = Mutex<[JobID: RunningAttempt]>([:])
    private let reaper = ChildReaper()

    /// What the scheduler holds of an attempt running here: its claim, and the flags it raises for it.
    private struct RunningAttempt {
        let claim: any JobClaim
        let interrupt = StopFlag()
        let cancel = StopFlag()
        let claimLost = StopFlag()
    }

    private static let wakeToken: UInt64 = 1
    private static let watcherToken: UInt64 = 2

    /// A scheduler for `store` running the configured kinds.
    public init(store: any RunnerStore, kinds: [String: KindConfig], options: RunnerOptions) throws(SystemError) {
        self.store = store
        self.kinds = kinds
        self.options = options
        wake = try EventFD()
    }

    /// Prepares the process: SIGTERM and SIGINT are taken by a thread (blocked everywhere else,
    /// so job threads and children start with them at default), SIGPIPE ignored, and this process
    /// becomes the subreaper of its jobs' orphans. Call before any other thread starts.
    public func takeSignals() throws(SystemError) {
        Signals.block([SIGTERM, SIGINT])
        Signals.ignorePipe()
        try ChildProcess.becomeSubreaper()
        let thread = Thread { [self] in
            while true {
                let signal = Signals.wait([SIGTERM, SIGINT])
                runnerLog(.info, "\(signal == SIGTERM ? "SIGTERM" : "SIGINT"): no new jobs; running jobs get \(options.shutdownGraceMilliseconds / 1000) s to finish")
                stopRequested.store(true, ordering: .releasing)
                wake.signal()
            }
        }
        thread.start()
    }

    /// Runs until the queue is drained (`drain`) or a stop is asked for and running jobs have ended.
    public func run(_ mode: Mode) throws(StoreError) {
        let watcher = try store.watchRunnerChanges()
        let epoll: Epoll
        do {
            epoll = try Epoll()
            try epoll.add(wake.fd, events: Epoll.readable, token: Self.wakeToken)
            if let fd = watcher.fd { try epoll.add(FileDescriptor(rawValue: fd), events: Epoll.readable, token: Self.watcherToken) }
        } catch { throw .unavailable(error.description) }
        defer { epoll.fd.close() }

        var shutdownDeadline: Int64?
        var interrupted = false
        var rescan = true
        var lastScan: Int64 = 0
        var lastFailure: String?
        while true {
            // Processes that left their job unnoticed (a replaced environment) are reaped here when they end.
            reaper.reap()
            let now = Clock.monotonicMilliseconds()
            if stopRequested.load(ordering: .acquiring) {
                let deadline = shutdownDeadline ?? now + options.shutdownGraceMilliseconds
                shutdownDeadline = deadline
                let attempts = running.withLock { Array($0.values) }
                if attempts.isEmpty { break }
                if !interrupted, now >= deadline {
                    runnerLog(.warning, "shutdown grace over: stopping \(attempts.count) job(s) and putting them back in the queue")
                    attempts.forEach { $0.interrupt.raise() }
                    interrupted = true
                }
            } else if rescan || now - lastScan >= options.rescanMilliseconds {
                lastScan = now
                do {
                    let claimed = try scanAndClaim()
                    if lastFailure != nil { runnerLog(.info, "the store works again") }
                    lastFailure = nil
                    if mode == .drain, claimed == 0, running.withLock({ $0.isEmpty }) { break }
                } catch {
                    // Once per failure, not once a pass: an outage is one line, and one more when it is over.
                    if lastFailure != error.description { runnerLog(.error, "\(error)") }
                    lastFailure = error.description
                    // A daemon retries at the next pass: a full disk or a PostgreSQL restart must not kill
                    // it. A drain with nothing running (jobs a failed pass started still run) says so with
                    // its exit status (69), not with 0 and a log line; so does a daemon that found a store
                    // only another configuration helps (78: a schema of another version, once PostgreSQL,
                    // away at the start, came back).
                    var fatal = mode == .drain
                    if case .unsuitable = error { fatal = true }
                    if fatal, running.withLock({ $0.isEmpty }) { throw error }
                }
            }
            var timeout = Int32(options.rescanMilliseconds)
            if watcher.fd == nil { timeout = Int32(watcher.pollIntervalMilliseconds) }
            if let shutdownDeadline, !interrupted { timeout = Int32(max(0, min(Int64(timeout), shutdownDeadline - now))) }
            rescan = false
            for (token, _) in epoll.wait(timeoutMilliseconds: timeout) where token == Self.wakeToken {
                wake.drain()
                rescan = true  // a job ended: its slot is free
            }
            // Submissions and cancel requests need a pass; status and log writes do not (a log
            // changes many times a second, and a pass takes the queue lock): a runner's watcher
            // leaves them out where its store can.
            let changes = (try? watcher.changes()) ?? []
            for change in changes {
                switch change {
                case .submitted: rescan = true
                case let .cancelRequested(id):
                    rescan = true
                    if let attempt = running.withLock({ $0[id] }) { cancelIfRequested(attempt) }
                case .everything:
                    rescan = true
                    running.withLock { Array($0.values) }.forEach(cancelIfRequested)
                case .job, .log: break
                }
            }
        }
    }

    /// Raises the attempt's cancel flag if its job's cancel request is there (a notice may be about one already gone).
    private func cancelIfRequested(_ attempt: RunningAttempt) {
        do { if try attempt.claim.isCancelRequested() { attempt.cancel.raise() } } catch {
            // Taken over (or its PostgreSQL liveness session given up): stop the program, write nothing.
            if case .claimLost = error { attempt.claimLost.raise() }
            runnerLog(.warning, "job \(attempt.claim.job.id): cannot look for a cancel request: \(error)")
        }
    }

    /// One pass over the store; returns how many jobs were claimed. A store error ends the pass
    /// (jobs started before it run on): the caller logs it and decides.
    private func scanAndClaim() throws(StoreError) -> Int {
        _ = try store.ingest(kinds: kinds) { name, why in
            runnerLog(.warning, "refused the submission new/\(name): \(why)")
        }
        let now = Timestamp(milliseconds: Clock.wallMilliseconds())
        for job in try store.recoverLostJobs(kinds: kinds, now: now) {
            runnerLog(.warning, "job \(job.id) (\(job.kind)) lost its runner: now \(job.state.rawValue), attempt \(job.attempt)")
        }
        for job in try store.cancelRequestedQueuedJobs(now: now) {
            runnerLog(.info, "job \(job.id) (\(job.kind)) canceled while queued")
        }
        var claimed = 0
        while running.withLock({ $0.count }) < options.workers,
              let claim = try store.claimNext(kinds: kinds, now: Timestamp(milliseconds: Clock.wallMilliseconds())) {
            start(claim)
            claimed += 1
        }
        return claimed
    }

    private func start(_ claim: any JobClaim) {
        let id = claim.job.id
        guard let kind = kinds[claim.job.kind] else { preconditionFailure("claimNext claimed a kind it was not given") }
        let entry = RunningAttempt(claim: claim)
        running.withLock { $0[id] = entry }
        let attempt = Attempt(claim: claim, kind: kind, options: options, interrupt: entry.interrupt, cancel: entry.cancel,
                              claimLost: entry.claimLost, reaper: reaper)
        let thread = Thread { [self] in
            attempt.run()
            running.withLock { $0[id] = nil }
            wake.signal()
        }
        thread.start()
    }
}
