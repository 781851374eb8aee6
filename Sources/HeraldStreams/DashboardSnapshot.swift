import HeraldCore

/// A dashboard's view of the jobs not yet ended, read off the hub thread after the dashboard was registered.
///
/// Registered first, the dashboard gets every change from then on; the snapshot, read after that,
/// holds every state older than the registration. A state can reach the dashboard both ways, in either
/// order: what it was sent meanwhile is remembered here, so the snapshot never takes a job back.
struct DashboardSnapshot {
    /// One job of the listing, its status event encoded by the reader (not on the hub thread).
    struct Entry: Sendable {
        let id: JobID
        let seq: Int
        let event: String
    }

    /// The highest seq sent to the dashboard per job since it was registered.
    private var sent: [JobID: Int] = [:]

    /// Notes that the dashboard was sent (or has pending) this state of a job.
    mutating func sent(_ id: JobID, seq: Int) {
        sent[id] = max(sent[id] ?? 0, seq)
    }

    /// The listing's entries the dashboard still lacks: those whose state, or a newer one, it was not sent meanwhile.
    func missing(from listing: [Entry]) -> [Entry] {
        listing.filter { $0.seq > (sent[$0.id] ?? 0) }
    }
}
