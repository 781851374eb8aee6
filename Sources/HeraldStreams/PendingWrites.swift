/// The bytes a stream's socket has not taken yet, in order, kept apart from the loop that writes them
/// (as swift-nio's PendingWritesManager keeps a channel's).
///
/// Frames shared by many streams (one job's status, one log piece) are queued as they are: a stream
/// that falls behind holds a reference to them, never a copy.
struct PendingWrites {
    /// What a write left behind.
    enum Outcome: Equatable {
        /// Everything queued is written.
        case drained
        /// Bytes are left: the socket is full.
        case blocked
    }

    private var frames: [[UInt8]] = []
    /// How much of `frames[0]` is written.
    private var written = 0
    /// Bytes queued and not written yet.
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    /// Queues `frame` behind what is already queued.
    mutating func append(_ frame: [UInt8]) {
        guard !frame.isEmpty else { return }
        frames.append(frame)
        count += frame.count
    }

    /// Calls `body` with the first unwritten bytes (part of one frame), for one write; `body` returns what it wrote.
    func withFirstBytes(_ body: (UnsafeRawBufferPointer) throws -> Int) rethrows -> Int {
        guard let first = frames.first else { return 0 }
        return try first.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[written...])) }
    }

    /// Takes `n` bytes written from the front of the queue.
    mutating func didWrite(_ n: Int) -> Outcome {
        precondition(n >= 0 && n <= count, "wrote \(n) of \(count) queued bytes")
        count -= n
        var left = n
        while left > 0 {
            let rest = frames[0].count - written
            if left < rest {
                written += left
                break
            }
            left -= rest
            frames.removeFirst()
            written = 0
        }
        return count == 0 ? .drained : .blocked
    }

    /// Drops everything queued (the stream is closed); returns how many bytes were dropped.
    mutating func removeAll() -> Int {
        defer {
            frames.removeAll()
            written = 0
            count = 0
        }
        return count
    }
}
