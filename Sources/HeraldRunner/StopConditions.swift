import HeraldCore
import HeraldPOSIX

/// The reasons to stop a running attempt, checked by its loop: a lost claim, shutdown, cancel request, timeout.
/// The flags are raised elsewhere (no store lookups here): the scheduler learns of cancel requests from its watcher.
final class StopConditions {
    /// Raised by the scheduler when the shutdown grace is over.
    let interrupt: StopFlag
    /// Raised by the scheduler when someone asks to cancel the job.
    let cancel: StopFlag
    /// Raised when the store refused a write or a lookup (by the attempt, or by the scheduler asking
    /// after `.everything`): another runner took the job over, or will.
    let claimLost: StopFlag
    private let timeoutAt: Int64?

    init(timeout: HeraldDuration?, interrupt: StopFlag, cancel: StopFlag, claimLost: StopFlag) {
        self.interrupt = interrupt
        self.cancel = cancel
        self.claimLost = claimLost
        timeoutAt = timeout.map { Clock.monotonicMilliseconds() + $0.milliseconds }
    }

    /// The reason to stop now, if there is one.
    func check(now: Int64) -> StopReason? {
        if claimLost.isRaised { return .claimLost }
        if interrupt.isRaised { return .interrupted }
        if cancel.isRaised { return .cancel }
        if let timeoutAt, now >= timeoutAt { return .timeout }
        return nil
    }

    /// When `check` will have something new to say without a flag being raised: the timeout.
    var nextCheck: Int64? { timeoutAt }
}
