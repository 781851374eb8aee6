import HeraldCore
import HeraldPOSIX

/// One parked stream, owned by the hub thread.
final class Subscriber {
    let token: UInt64
    let fd: FileDescriptor
    let requestID: UInt16
    let target: StreamTarget
    let jobIDs: [JobID]

    /// What it was sent of `jobIDs`' states, what its socket has not taken, and its deadlines.
    var state: StreamState
    /// How much of the log has been sent (log streams only).
    var logOffset = 0
    /// Dashboard and owner streams: the latest undelivered status event per job (later changes replace earlier ones).
    var pending: [JobID: String] = [:]
    /// Dashboard streams, until their snapshot (read off the hub thread) is merged: what they were sent meanwhile.
    var snapshot: DashboardSnapshot?
    /// Dashboard and owner streams: the seq of each job their snapshot gave them ahead of the broadcast, until the broadcast passes it.
    var aheadOfBroadcast: [JobID: Int] = [:]

    /// The end records are queued: close once they are written.
    var ending = false
    var closed = false

    /// When the stream was parked (wall-clock ms, as jobs' timestamps).
    let connectedAt = Clock.wallMilliseconds()

    init(token: UInt64, stream: ParkedStream, schedule: StreamSchedule) {
        self.token = token
        fd = FileDescriptor(rawValue: stream.fd)
        requestID = stream.requestID
        target = stream.target
        let seqs: [Int]
        switch stream.target {
        case let .job(id, _, cursor):
            jobIDs = [id]
            seqs = [cursor?.seq ?? 0]
            logOffset = cursor?.logOffset ?? 0
        case let .jobs(ids, cursor):
            jobIDs = ids
            seqs = cursor?.seqs ?? Array(repeating: 0, count: ids.count)
        case .dashboard, .owner:
            jobIDs = []
            seqs = []
        }
        state = StreamState(seqs: seqs, schedule: schedule)
    }

    var isBlocked: Bool { state.isBlocked }
    var followsLog: Bool { if case .job(_, true, _) = target { return true } else { return false } }
}
