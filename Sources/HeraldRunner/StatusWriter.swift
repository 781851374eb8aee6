import HeraldCore
import HeraldStore

/// Writes one running job's status through its claim and a `StatusThrottle`, not durably (a crash may
/// lose progress, never the job); the final state ends the claim, durably.
final class StatusWriter {
    private let claim: any JobClaim
    private let claimLost: StopFlag
    private var throttle: StatusThrottle
    /// The last progress write failed (logged once until one succeeds).
    private var failing = false

    /// A writer for a job whose `running` state the claim wrote at `now` (monotonic milliseconds).
    init(claim: any JobClaim, claimLost: StopFlag, intervalMilliseconds: Int64, now: Int64) {
        self.claim = claim
        self.claimLost = claimLost
        throttle = StatusThrottle(intervalMilliseconds: intervalMilliseconds, lastWrite: now)
    }

    /// When a held-back state must be written.
    var deadline: Int64? { throttle.deadline }

    /// When to read the program's reports next: nil as they come, else at this time (`StatusThrottle.nextRead`).
    func nextRead(now: Int64) -> Int64? { throttle.nextRead(now: now) }

    /// The job's latest state: written now or at `deadline`.
    func update(_ job: Job, now: Int64) {
        if let job = throttle.offer(job, now: now) { write(job) }
    }

    /// Writes the held-back state if its time has come.
    func flushIfDue(now: Int64) {
        if let job = throttle.due(now: now) { write(job) }
    }

    /// Ends the attempt with its last state (`JobClaim.finish`), replacing anything held back.
    func finish(_ job: Job) throws(StoreError) {
        throttle.discardPending()
        try claim.finish(job)
    }

    private func write(_ job: Job) {
        guard !claimLost.isRaised else { return }
        // A lost progress update is harmless: the next one or the final state replaces it. While the store
        // is away (a PostgreSQL restart) every write fails: one line when that starts, one when it ends,
        // not twenty a second per job.
        do {
            try claim.writeProgress(job)
            if failing {
                failing = false
                runnerLog(.info, "job \(job.id) status written again")
            }
        } catch {
            if case .claimLost = error { claimLost.raise(); return }
            if !failing { runnerLog(.warning, "job \(job.id) status not written (later states are tried as they come): \(error)") }
            failing = true
        }
    }
}
