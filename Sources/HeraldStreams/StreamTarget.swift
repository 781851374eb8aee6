import HeraldCore

/// What a parked event stream follows, and where its client already is.
public enum StreamTarget: Sendable {
    /// One job; with `log`, its output too. `cursor` is the parsed Last-Event-ID, if any.
    case job(JobID, log: Bool, cursor: StreamCursor?)
    /// Up to 64 jobs over one connection; `cursor` holds the client's last seq per job.
    case jobs([JobID], cursor: MultiStreamCursor?)
    /// Every job's changes, for dashboards; it never ends by itself.
    case dashboard
    /// One owner's jobs, as the dashboard streams all (SPEC §9: the owner stream); it never ends by itself.
    case owner(String)
}

/// A stream handed to the hub: the connection, its FastCGI request id, and what it follows.
public struct ParkedStream: Sendable {
    public let fd: Int32
    public let requestID: UInt16
    public let target: StreamTarget
    /// The `retry:` this connection gets, already jittered.
    public let retryMilliseconds: Int
    /// When the read token that opened it lapses (wall-clock ms): the stream ends then, and its client
    /// reconnects with a fresh token. nil: no read token limits it.
    public let authorizedUntil: Int64?

    public init(fd: Int32, requestID: UInt16, target: StreamTarget, retryMilliseconds: Int, authorizedUntil: Int64? = nil) {
        self.fd = fd
        self.requestID = requestID
        self.target = target
        self.retryMilliseconds = retryMilliseconds
        self.authorizedUntil = authorizedUntil
    }
}
