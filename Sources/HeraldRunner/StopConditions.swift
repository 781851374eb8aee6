import HeraldCore
import HeraldPOSIX
import HeraldStore

/// The reasons to stop a running attempt, checked by its loop: timeout, cancel request, shutdown.
final class StopConditions {
    private let store: any RunnerStore
    private let id: JobID
    private let interrupt: InterruptFlag
    private let timeoutAt: Int64?
    private let cancelPollMilliseconds: Int64
    private var nextCancelCheck: Int64 = 0

    init(store: any RunnerStore, id: JobID, timeout: HeraldDuration?, interrupt: InterruptFlag, cancelPollMilliseconds: Int64) {
        self.store = store
        self.id = id
        self.interrupt = interrupt
        timeoutAt = timeout.map { Clock.monotonicMilliseconds() + $0.milliseconds }
        self.cancelPollMilliseconds = cancelPollMilliseconds
    }

    /// The reason to stop now, if there is one. The cancel file is looked at once per poll interval.
    func check(now: Int64) -> StopReason? {
        if interrupt.isRaised { return .interrupted }
        if let timeoutAt, now >= timeoutAt { return .timeout }
        if now >= nextCancelCheck {
            nextCancelCheck = now + cancelPollMilliseconds
            if store.isCancelRequested(id) { return .cancel }
        }
        return nil
    }

    /// When `check` may next have something new to say.
    var nextCheck: Int64 { min(nextCancelCheck, timeoutAt ?? .max) }
}
