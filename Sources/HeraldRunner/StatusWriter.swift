import HeraldCore
import HeraldStore

/// Writes one running job's status through a `StatusThrottle`, not durably (a crash may lose progress,
/// never the job); the final state is written at once and durably.
final class StatusWriter {
    private let store: any RunnerStore
    private var throttle: StatusThrottle

    /// A writer for a job whose `running` state the claim wrote at `now` (monotonic milliseconds).
    init(store: any RunnerStore, intervalMilliseconds: Int64, now: Int64) {
        self.store = store
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
