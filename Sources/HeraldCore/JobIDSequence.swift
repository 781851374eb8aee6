/// Mints one process's job IDs in strictly increasing order, so jobs submitted within one millisecond
/// list and run in the order they were submitted.
///
/// Where two IDs would share a millisecond, the later one takes the next millisecond rather than the
/// next random value (as monotonic ULIDs do): an ID is a capability, and a neighbour's ID must not be
/// one more than your own. The time part runs ahead of the clock only while more than 1,000 jobs a
/// second arrive, and `created_at` keeps the clock's time.
public struct JobIDSequence: Sendable {
    private var lastMilliseconds: UInt64 = 0

    public init() {}

    /// The next ID at `now` (milliseconds since the epoch) with 10 `random` bytes.
    public mutating func next(nowMilliseconds now: UInt64, random: [UInt8]) -> JobID {
        let milliseconds = max(now, lastMilliseconds + 1)
        lastMilliseconds = milliseconds
        return JobID(milliseconds: milliseconds, random: random)
    }
}
