import HeraldCore

/// Merges a running job's status writes to one per interval: the latest state wins, and a
/// held-back state is written when its interval has passed. Pure: the caller passes the time.
public struct StatusThrottle: Sendable {
    /// The least time between two writes, in milliseconds.
    public let intervalMilliseconds: Int64
    private var lastWrite: Int64
    /// The state waiting for its turn, if any.
    public private(set) var pending: Job?

    /// A throttle whose last write happened at `lastWrite` (monotonic milliseconds).
    public init(intervalMilliseconds: Int64, lastWrite: Int64) {
        self.intervalMilliseconds = intervalMilliseconds
        self.lastWrite = lastWrite
    }

    /// When the pending state is due, or nil when nothing is pending.
    public var deadline: Int64? { pending == nil ? nil : lastWrite + intervalMilliseconds }

    /// Takes a new state at `now`: returns it when it may be written now, else keeps it as pending and returns nil.
    public mutating func offer(_ job: Job, now: Int64) -> Job? {
        pending = job
        return due(now: now)
    }

    /// The pending state if its time has come (it is then no longer pending).
    public mutating func due(now: Int64) -> Job? {
        guard let job = pending, now >= lastWrite + intervalMilliseconds else { return nil }
        pending = nil
        lastWrite = now
        return job
    }

    /// Forgets the pending state: a final state replaces it.
    public mutating func discardPending() { pending = nil }
}
