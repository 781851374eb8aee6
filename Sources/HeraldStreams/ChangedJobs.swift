import HeraldCore

/// Which changed jobs the hub reads itself and which it leaves to its reader thread.
///
/// The hub reads at most `budget` job files per round, followed jobs first (their streams are the
/// latency-sensitive ones): an inotify overflow reports every kept job, and reading 100,000 files
/// there would hold every stream's events and heartbeats for seconds.
struct ChangedJobs {
    /// Read on the hub thread now.
    var now: [JobID] = []
    /// Read by the reader thread; true when a stream follows the job (then it is reported whatever it holds).
    var later: [JobID: Bool] = [:]

    /// Splits `changed` (job ids, deduplicated) by whether `isFollowed`, keeping only what someone watches.
    init(_ changed: [JobID], isFollowed: (JobID) -> Bool, dashboardsOpen: Bool, budget: Int) {
        let followed = changed.filter(isFollowed)
        let others = dashboardsOpen ? changed.filter { !isFollowed($0) } : []
        for id in followed + others {
            if now.count < budget { now.append(id) } else { later[id] = isFollowed(id) }
        }
    }
}
