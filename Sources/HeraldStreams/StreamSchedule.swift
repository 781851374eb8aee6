/// When one stream needs the hub without any change of its jobs: its heartbeat, its write deadline,
/// its read token's lapse (all monotonic ms).
///
/// Pure: the hub passes `now` in, arms the stream's timer at `nextDeadline` and performs what `due` returns.
struct StreamSchedule {
    /// What the hub does for the stream at a deadline.
    enum Action: Equatable {
        /// Nothing is due (the deadline the timer held was moved).
        case nothing
        /// A `: ping` comment, `heartbeat` after the last one.
        case ping
        /// Close without a word: the client read nothing for the write deadline (`blockedFor` ms).
        case drop(blockedFor: Int64)
        /// The read token lapsed: end the stream with a comment, no `end` (the job did not end).
        case endLapsed
        /// The read token lapsed while the socket was full: nothing more reaches the client in time, so close.
        case closeLapsed
    }

    let heartbeat: Int64
    let writeDeadline: Int64
    /// When the read token that opened the stream lapses; nil: never.
    let lapseAt: Int64?
    private(set) var nextPing: Int64
    /// When the socket stopped taking bytes; nil while it takes them.
    private(set) var blockedSince: Int64?

    init(now: Int64, heartbeat: Int64, writeDeadline: Int64, lapseAt: Int64? = nil) {
        self.heartbeat = heartbeat
        self.writeDeadline = writeDeadline
        self.lapseAt = lapseAt
        nextPing = now + heartbeat
    }

    /// The earliest time `due` has something to do.
    var nextDeadline: Int64 {
        min(nextPing, blockedSince.map { $0 + writeDeadline } ?? .max, lapseAt ?? .max)
    }

    /// The socket stopped taking bytes at `now` (a later report while still blocked keeps the first).
    mutating func didBlock(now: Int64) {
        if blockedSince == nil { blockedSince = now }
    }

    /// The socket took everything queued.
    mutating func didDrain() { blockedSince = nil }

    /// What is due at `now`, the gravest first; a ping falls due only to a stream whose socket takes bytes
    /// (a blocked one has bytes on their way), and heartbeats a stalled loop missed collapse into one.
    mutating func due(now: Int64) -> Action {
        if let lapseAt, now >= lapseAt { return blockedSince == nil ? .endLapsed : .closeLapsed }
        if let since = blockedSince, now - since >= writeDeadline { return .drop(blockedFor: now - since) }
        guard now >= nextPing else { return .nothing }
        nextPing += ((now - nextPing) / heartbeat + 1) * heartbeat
        return blockedSince == nil ? .ping : .nothing
    }
}
