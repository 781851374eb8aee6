import HeraldCore

/// Which changed jobs the hub reads itself and which it leaves to a reader thread.
///
/// The hub reads only followed jobs (their streams are the latency-sensitive ones, and there are
/// at most as many as streams), up to `budget` a round; a job only dashboards care about is read
/// off the hub. An inotify overflow reports every kept job, and its queue drains over many rounds:
/// reading them there held every stream's events and heartbeats for seconds.
struct ChangedJobs {
    /// Read on the hub thread now.
    var now: [JobID] = []
    /// Read by a reader thread; true when a stream follows the job (then it is reported whatever it holds).
    var later: [JobID: Bool] = [:]

    /// Splits `changed` (job ids, deduplicated) by whether `isFollowed`, keeping only what someone watches.
    init(_ changed: [JobID], isFollowed: (JobID) -> Bool, dashboardsOpen: Bool, budget: Int) {
        for id in changed {
            if isFollowed(id) {
                if now.count < budget { now.append(id) } else { later[id] = true }
            } else if dashboardsOpen {
                later[id] = false
            }
        }
    }
}
