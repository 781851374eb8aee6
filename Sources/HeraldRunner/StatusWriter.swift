import HeraldCore
import HeraldPOSIX
import HeraldStore

/// Writes one running job's status through its claim and a `StatusThrottle`; the final state ends the claim.
final class StatusWriter {
    private let claim: any JobClaim
    private let claimLost: StopFlag
    private var throttle: StatusThrottle

    /// A writer for a job whose `running` state the claim has just written.
    init(claim: any JobClaim, claimLost: StopFlag, intervalMilliseconds: Int64) {
        self.claim = claim
        self.claimLost = claimLost
        throttle = StatusThrottle(intervalMilliseconds: intervalMilliseconds, lastWrite: Clock.monotonicMilliseconds())
    }

    /// When a held-back state must be written, in monotonic milliseconds.
    var deadline: Int64? { throttle.deadline }

    /// A new state of the running job: written now or at `deadline`.
    func update(_ job: Job) {
        if let job = throttle.offer(job, now: Clock.monotonicMilliseconds()) { write(job) }
    }

    /// Writes the held-back state if its time has come.
    func flushIfDue() {
        if let job = throttle.due(now: Clock.monotonicMilliseconds()) { write(job) }
    }

    /// Ends the attempt with its last state (`JobClaim.finish`), replacing anything held back.
    func finish(_ job: Job) throws(StoreError) {
        throttle.discardPending()
        try claim.finish(job)
    }

    private func write(_ job: Job) {
        guard !claimLost.isRaised else { return }
        // A lost progress update is harmless: the next one or the final state replaces it.
        do { try claim.writeProgress(job) } catch {
            if case .claimLost = error { claimLost.raise(); return }
            runnerLog(.warning, "job \(job.id) status not written: \(error)")
        }
    }
}
