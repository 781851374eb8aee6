import HeraldCore

/// One `log` event as the hub sends it: the bytes of the log it carries and its FastCGI framing.
struct LogPiece {
    /// Which chunk: a job's log from `offset`, for a client at status `seq`, on FastCGI request `requestID`;
    /// `jobEnded`, since only an ended job's last chunk may end in a CR or a cut UTF-8 sequence.
    struct Key: Hashable {
        let job: JobID
        let offset: Int
        let seq: Int
        let requestID: UInt16
        let jobEnded: Bool
    }

    /// Log bytes the event carries (a cut CRLF or UTF-8 sequence waits for the next chunk).
    let consumed: Int
    /// The framed event; empty when `consumed` is 0.
    let frame: [UInt8]
    /// Nothing more was in the log after this chunk when it was read.
    let atEnd: Bool
    /// The event carries the whole rest of the log.
    let complete: Bool

    /// Nothing to send yet: the chunk is being read off the hub thread (a database round trip), or its read
    /// failed and is made again. Not complete, so an ended job's final status waits for it; its followers
    /// catch up when it comes.
    static let awaitingRead = LogPiece(consumed: 0, frame: [], atEnd: true, complete: false)

    /// Which read of a job's log: from `offset`, asked while the hub held state `seq` of the job. A read
    /// asked for an earlier state may predate the last log writes of a later one (the runner writes a
    /// job's log before its status), so a newer state asks again.
    struct Origin: Hashable {
        let job: JobID
        let offset: Int
        let seq: Int
    }
}
