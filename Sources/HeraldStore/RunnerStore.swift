import HeraldCore

/// A job a runner has claimed. Every write of the attempt goes through it, so a store can refuse the
/// writes of a claim that was taken over (`.claimLost`): a cut-off runner never overwrites its successor.
/// Used by the attempt's thread, and asked `isCancelRequested` by the scheduler's.
public protocol JobClaim: AnyObject, Sendable {
    /// The job as claimed (state `running`).
    var job: Job { get }
    /// A new state of the still-running job (progress, message, result). Need not be durable: a crash
    /// may lose it, never the job.
    func writeProgress(_ job: Job) throws(StoreError)
    /// Appends program output to the job's log (the runner keeps the cap and writes the marker).
    func appendLog(_ bytes: [UInt8]) throws(StoreError)
    /// How many bytes the job's log holds now: a retry appends to the same log, so the cap spans attempts.
    func logSize() throws(StoreError) -> Int
    /// Whether someone asked to cancel the job: one lookup, at the start and after `.everything`;
    /// otherwise the runner learns of requests from its watcher's `.cancelRequested`.
    func isCancelRequested() throws(StoreError) -> Bool
    /// Notes the process group running the attempt, for a recovery on this host to kill what is left of it.
    func recordProcessGroup(_ group: Int32)
    /// Ends the attempt with its last state in one step: written durably; a `queued` state (a retry, an
    /// interrupted attempt) is back in the queue; a cancel request is forgotten; the claim is released.
    /// Nothing is written when the claim was taken over (`.claimLost`).
    func finish(_ job: Job) throws(StoreError)
    /// Drops the claim as a crash would, leaving the job to recovery (`runner_lost`).
    func abandon()
}

/// What runners do with the store, on top of what the web side does. Only runners write job state.
public protocol RunnerStore: JobStore {
    /// Takes in submissions made outside `submit`'s own step (the directory's new/, which the web user
    /// writes); returns how many were queued. A store whose `submit` queues at once returns 0.
    ///
    /// A submission is taken only if it is a fresh job (queued, seq 1, attempt 1, nothing run yet) whose
    /// ID is not taken, and, for a kind in `kinds`, whose params pass that kind's checks; any other is
    /// removed and reported to `refused` with its name and why.
    func ingest(kinds: [String: KindConfig]?, refused: (String, String) -> Void) throws(StoreError) -> Int
    /// Retries or fails (`runner_lost`) the jobs whose runner is dead or cut off, wherever it ran.
    func recoverLostJobs(kinds: [String: KindConfig], now: Timestamp) throws(StoreError) -> [Job]
    /// Cancels queued jobs that someone asked to cancel; returns the jobs now canceled.
    func cancelRequestedQueuedJobs(now: Timestamp) throws(StoreError) -> [Job]
    /// Claims the oldest queued job whose kind has a free concurrency slot (across every runner), and
    /// marks it running, durably.
    func claimNext(kinds: [String: KindConfig], now: Timestamp) throws(StoreError) -> (any JobClaim)?
    /// Removes up to `limit` jobs that ended before `cutoff` (with their logs), oldest first, and returns
    /// them: gc calls it until it returns fewer than `limit`. `dryRun` removes nothing and returns every such job.
    func removeFinishedJobs(before cutoff: Timestamp, limit: Int, dryRun: Bool) throws(StoreError) -> [Job]
    /// Removes idempotency records made before `cutoff` (SPEC §9: keys live 24 h); `dryRun` only counts them.
    func expireIdempotencyRecords(before cutoff: Timestamp, dryRun: Bool) throws(StoreError) -> Int
    /// A watcher for what a runner acts on: `.submitted`, `.cancelRequested` and `.everything`. It may
    /// report more (the default is `watch()`); a store should leave out status and log writes where
    /// it can, which the runner's own jobs make thousands of times a second.
    func watchRunnerChanges() throws(StoreError) -> any StoreWatcher
}

extension RunnerStore {
    /// `watch()`: every change, of which a runner ignores what it does not act on.
    public func watchRunnerChanges() throws(StoreError) -> any StoreWatcher { try watch() }

    /// `ingest(kinds:refused:)` with the structural checks only.
    public func ingest() throws(StoreError) -> Int { try ingest(kinds: nil, refused: { _, _ in }) }
}
