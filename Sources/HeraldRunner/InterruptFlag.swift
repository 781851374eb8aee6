import Synchronization

/// Set by the scheduler when a shutdown's grace period is over: the attempt stops and goes back to the queue.
final class InterruptFlag: Sendable {
    private let raised = Atomic<Bool>(false)

    var isRaised: Bool { raised.load(ordering: .acquiring) }

    func raise() { raised.store(true, ordering: .releasing) }
}
