/// Where a client is in a job's event stream: the last status `seq` and log byte it has, encoded as the event id.
///
/// Ids look like `7` (status only) or `7.1024` (with the log). They are opaque to clients;
/// anything that does not parse is treated as no cursor at all (the client gets the current state).
public struct StreamCursor: Equatable, Sendable {
    public var seq: Int
    public var logOffset: Int?

    /// A cursor at `seq`, and at `logOffset` for streams that carry the log.
    public init(seq: Int, logOffset: Int? = nil) {
        self.seq = seq
        self.logOffset = logOffset
    }

    /// Parses an event id; nil when malformed.
    public init?(eventID: String) {
        let parts = eventID.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let seq = StreamCursor.number(parts[0]) else { return nil }
        self.seq = seq
        if parts.count == 2 {
            guard let offset = StreamCursor.number(parts[1]) else { return nil }
            logOffset = offset
        }
    }

    /// The event id text.
    public var eventID: String { logOffset.map { "\(seq).\($0)" } ?? "\(seq)" }

    static func number(_ s: Substring) -> Int? {
        guard (1...18).contains(s.utf8.count), s.utf8.allSatisfy({ (48...57).contains($0) }) else { return nil }
        return Int(s)
    }
}

/// Where a client is in a multi-job stream: the last `seq` of each listed job, in the order of `ids=`.
public struct MultiStreamCursor: Equatable, Sendable {
    public var seqs: [Int]

    /// A cursor with one seq per listed job.
    public init(seqs: [Int]) { self.seqs = seqs }

    /// Parses an id like `7_0_12`; nil when malformed or when the count differs from `jobCount`.
    public init?(eventID: String, jobCount: Int) {
        let parts = eventID.split(separator: "_", omittingEmptySubsequences: false)
        guard parts.count == jobCount else { return nil }
        var seqs: [Int] = []
        for p in parts {
            guard let n = StreamCursor.number(p) else { return nil }
            seqs.append(n)
        }
        self.seqs = seqs
    }

    /// The event id text.
    public var eventID: String { seqs.map(String.init).joined(separator: "_") }
}

/// What a (re)connecting client of one job's stream is owed.
public enum ResumePlan: Equatable, Sendable {
    /// The client has seen the terminal status: answer 204 so the browser stops for good.
    case finished
    /// Open the stream; send the current status unless the client has it, and the log from `logOffset`.
    case stream(sendStatus: Bool, logOffset: Int)

    /// Decides from the job's current state and the client's cursor (nil: first connect or malformed id).
    public static func plan(job: Job, cursor: StreamCursor?) -> ResumePlan {
        // A cursor ahead of the job cannot come from this server: ignore it like a malformed one.
        guard let cursor, cursor.seq <= job.seq else { return .stream(sendStatus: true, logOffset: 0) }
        if cursor.seq == job.seq, job.state.isTerminal { return .finished }
        return .stream(sendStatus: cursor.seq < job.seq, logOffset: cursor.logOffset ?? 0)
    }
}
