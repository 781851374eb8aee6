import HeraldCore
import HeraldPOSIX
import HeraldStore

/// Writes one running job's status through a `StatusThrottle`; the final state is written at once and durably.
final class StatusWriter {
    private let store: any RunnerStore
    private var throttle: StatusThrottle

    /// A writer for a job whose `running` state the claim has just written.
    init(store: any RunnerStore, intervalMilliseconds: Int64) {
        self.store = store
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

    /// Writes the attempt's last state, durably, replacing anything held back.
    func finish(_ job: Job) throws(StoreError) {
        throttle.discardPending()
        try store.write(job, durable: true)
    }

    private func write(_ job: Job) {
        // A lost progress update is harmless: the next one or the final state replaces it.
        do { try store.write(job, durable: false) } catch { runnerLog(.warning, "job \(job.id) status not written: \(error)") }
    }
}
