import Glibc

/// Which signal each thing left of an ending job gets (SPEC §6): SIGTERM once, and once the grace is
/// over SIGKILL on every turn to whatever is still there, so a process that only shows up late (handed
/// to the runner when its parent died) is not missed.
struct StopSignals {
    let graceMilliseconds: Int64
    /// When the first signal went out; nil until stopping starts.
    private(set) var startedAt: Int64?
    private var terminated: Set<Target> = []

    /// What is signalled: the program's process group, or one process that left it.
    enum Target: Hashable {
        case group(Int32)
        case process(Int32)
    }

    init(graceMilliseconds: Int64) { self.graceMilliseconds = graceMilliseconds }

    /// The signal `target` should get now, or nil when it has had its SIGTERM and the grace runs.
    mutating func signal(for target: Target, now: Int64) -> Int32? {
        let start = startedAt ?? now
        startedAt = start
        if now >= start + graceMilliseconds { return SIGKILL }
        return terminated.insert(target).inserted ? SIGTERM : nil
    }

    /// When SIGKILL is due, once stopping has started.
    var killAt: Int64? { startedAt.map { $0 + graceMilliseconds } }
}
