/// How a runner process behaves; the defaults are the contract (SPEC §6), tests shorten the waits.
public struct RunnerOptions: Sendable {
    /// Jobs run at once by this process.
    public var workers: Int
    /// From SIGTERM to SIGKILL of a job's process group.
    public var killGraceMilliseconds: Int64 = 10_000
    /// How long `work` lets running jobs finish after SIGTERM before stopping and requeueing them.
    public var shutdownGraceMilliseconds: Int64 = 30_000
    /// A job log is cut at this size.
    public var logCapBytes = 10 << 20
    /// Status writes of a running job are at least this far apart (20 a second).
    public var statusIntervalMilliseconds: Int64 = 50
    /// How often the daemon rescans for lost jobs even when nothing wakes it.
    public var rescanMilliseconds: Int64 = 1000

    /// Options with the contract's defaults and `workers` jobs at once.
    public init(workers: Int) { self.workers = workers }
}
