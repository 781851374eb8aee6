import HeraldCore
import HeraldStore

/// The log chunks a hub asks its reader thread for (stores whose reads are round trips): those back
/// this round, those on their way; and, on any store, the jobs whose followers ask again after a read failed.
/// Pure: the hub passes the time.
struct LogReads {
    /// What a follower's chunk is now.
    enum Lookup: Equatable {
        /// Back this round: send it.
        case ready(LogRead)
        /// Not asked for yet: ask the reader (now noted as asked).
        case ask
        /// On its way: its followers catch up when it comes.
        case waiting
    }

    private var back: [LogPiece.Origin: LogRead] = [:]
    private var asked: Set<LogPiece.Origin> = []
    private var retries = ReadRetries()
    /// When the jobs whose read failed ask again, if any did.
    var retryAt: Int64? { retries.dueAt }

    /// The chunk `origin` names, as far as it has come.
    mutating func lookUp(_ origin: LogPiece.Origin) -> Lookup {
        if let read = back[origin] { return .ready(read) }
        return asked.insert(origin).inserted ? .ask : .waiting
    }

    /// A read came back at `now`: true when it brought the chunk (the job's followers catch up now), false when
    /// it failed (they ask again at `retryAt`).
    mutating func arrived(_ origin: LogPiece.Origin, _ read: LogRead?, now: Int64) -> Bool {
        asked.remove(origin)
        guard let read else {
            retries.failed(origin.job, now: now)
            return false
        }
        back[origin] = read
        return true
    }

    /// A new round: chunks are shared within the round they came in (the log may grow after it).
    mutating func newRound() { back.removeAll(keepingCapacity: true) }

    /// The jobs whose followers ask again at `now` (none before `retryAt`).
    mutating func dueRetries(now: Int64) -> Set<JobID> { retries.due(now: now) }
}
