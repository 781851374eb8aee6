import HeraldCore

/// Paces a running job's status writes to one per interval: a state offered when the interval since
/// the last write has passed is written at once; one offered sooner waits until it has (the latest
/// state wins). Pure: the caller passes the time.
///
/// Offer the latest state once per batch of reports, never per report: a program's reports pile up
/// in the pipe while its runner writes, and a throttle fed one report at a time writes the oldest of
/// them as soon as the interval allows, then the next, never catching up (issue 11: states visible
/// 177 ms late at p50). And while the interval runs, reports need not be read at all (`nextRead`):
/// what is read then could only wait, so they stay in the pipe until `opensAt`.
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

    /// When the next write may happen.
    public var opensAt: Int64 { lastWrite + intervalMilliseconds }

    /// Whether a state offered at `now` is written at once.
    public func isOpen(now: Int64) -> Bool { now >= opensAt }

    /// When to read the program's reports next: nil when they may be read as they come (a state
    /// offered now is written at once), else `opensAt` (read sooner, they could only wait).
    public func nextRead(now: Int64) -> Int64? { isOpen(now: now) ? nil : opensAt }

    /// When the pending state is due, or nil when nothing is pending.
    public var deadline: Int64? { pending == nil ? nil : opensAt }

    /// Takes the job's latest state at `now`: returns it when it may be written now, else keeps it as pending and returns nil.
    public mutating func offer(_ job: Job, now: Int64) -> Job? {
        pending = job
        return due(now: now)
    }

    /// The pending state if its time has come (it is then no longer pending).
    public mutating func due(now: Int64) -> Job? {
        guard let job = pending, isOpen(now: now) else { return nil }
        pending = nil
        lastWrite = now
        return job
    }

    /// Forgets the pending state: a final state replaces it.
    public mutating func discardPending() { pending = nil }
}
