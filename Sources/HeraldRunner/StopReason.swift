/// Why an attempt is stopped before its program ends by itself.
enum StopReason: Sendable {
    /// The kind's `timeout` passed.
    case timeout
    /// Someone asked to cancel the job.
    case cancel
    /// The runner is shutting down.
    case interrupted
    /// Another runner took the job over: the attempt stops and writes nothing more.
    case claimLost
}
