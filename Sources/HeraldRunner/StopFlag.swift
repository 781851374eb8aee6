import Synchronization

/// A reason to stop an attempt, raised on another thread than the attempt's (the scheduler's: a cancel
/// request, the end of a shutdown's grace) or by the attempt itself (its claim was lost), and looked at by its loop.
final class StopFlag: Sendable {
    private let raised = Atomic<Bool>(false)

    var isRaised: Bool { raised.load(ordering: .acquiring) }

    func raise() { raised.store(true, ordering: .releasing) }
}
