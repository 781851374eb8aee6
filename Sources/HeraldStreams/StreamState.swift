/// One stream's delivery decisions: which state it gets next, what its socket has not taken, and its deadlines.
///
/// Pure (time is passed in): the hub performs the writes and reports them with `didWrite`.
struct StreamState {
    /// The last status seq sent for each followed job, in the stream's order (0: none yet).
    private(set) var seqs: [Int]
    private(set) var unsent = PendingWrites()
    private(set) var schedule: StreamSchedule

    init(seqs: [Int], schedule: StreamSchedule) {
        self.seqs = seqs
        self.schedule = schedule
    }

    /// Bytes wait for the socket: new states are merged (the latest goes when it drains), not queued.
    var isBlocked: Bool { !unsent.isEmpty }

    /// Whether the state `seq` of the stream's `k`th job goes out now, noting it as sent if so: only a
    /// state newer than the last one sent, and only while the socket takes bytes, so states never reorder
    /// and a slow client costs one pending frame, never a queue of states.
    mutating func takeStatus(_ k: Int, seq: Int) -> Bool {
        guard seq > seqs[k], !isBlocked else { return false }
        seqs[k] = seq
        return true
    }

    /// Queues `frame` for the socket, behind what waits already.
    mutating func queue(_ frame: [UInt8]) { unsent.append(frame) }

    /// The socket took `n` bytes at `now` (0: it is full); the write deadline runs while bytes are left.
    mutating func didWrite(_ n: Int, now: Int64) -> PendingWrites.Outcome {
        let outcome = unsent.didWrite(n)
        switch outcome {
        case .drained: schedule.didDrain()
        case .blocked: schedule.didBlock(now: now)
        }
        return outcome
    }

    /// Drops what waits for the socket (the stream is closed); returns how many bytes were dropped.
    mutating func dropUnsent() -> Int { unsent.removeAll() }

    /// What is due at `now` (see StreamSchedule).
    mutating func due(now: Int64) -> StreamSchedule.Action { schedule.due(now: now) }
}
