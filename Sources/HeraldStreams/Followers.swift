import HeraldCore

/// Which streams follow which job: the subscriptions of one-job and multi-job streams.
///
/// A stream that stops following during a hub round leaves at the round's end (`endRound`): it
/// stops while its job's followers are being iterated, and taking it out there would copy them all.
struct Followers<Stream: AnyObject> {
    private var byJob: [JobID: [UInt64: Stream]] = [:]
    private var leaving: [(token: UInt64, jobs: [JobID])] = []

    /// The streams following `id` (with those that stopped this round), or nil when none does.
    subscript(id: JobID) -> [UInt64: Stream]? { byJob[id] }

    /// Every job some stream follows.
    var jobs: Dictionary<JobID, [UInt64: Stream]>.Keys { byJob.keys }

    mutating func add(_ stream: Stream, token: UInt64, jobs: [JobID]) {
        for id in jobs { byJob[id, default: [:]][token] = stream }
    }

    /// Notes that the stream `token` stops following `jobs`; it leaves at the round's end.
    mutating func remove(token: UInt64, jobs: [JobID]) {
        if !jobs.isEmpty { leaving.append((token, jobs)) }
    }

    /// Takes out the streams removed this round; returns the jobs that nobody follows any more.
    mutating func endRound() -> [JobID] {
        guard !leaving.isEmpty else { return [] }
        var unfollowed: [JobID] = []
        for (token, jobs) in leaving {
            for id in jobs {
                byJob[id]?[token] = nil
                if byJob[id]?.isEmpty == true {
                    byJob[id] = nil
                    unfollowed.append(id)
                }
            }
        }
        leaving.removeAll(keepingCapacity: true)
        return unfollowed
    }
}
