import HeraldCore

/// A job a runner has claimed: while the claim is held the job is alive; release it when the attempt ends.
public protocol JobClaim: AnyObject, Sendable {
    /// The job as written when it was claimed (state `running`).
    var job: Job { get }
    /// Ends the claim: the liveness lock and the concurrency slot are freed.
    func release()
    /// Notes the process group running the attempt, so a runner recovering the job after a crash can kill what is left of it.
    func recordProcessGroup(_ group: Int32)
    /// Drops the claim as a crash would, leaving the job to recovery (`runner_lost`): for when its final state could not be written.
    func abandon()
}

/// What runners do with the store, on top of what the web side does. Only runners write job state.
public protocol RunnerStore: JobStore {
    /// Moves waiting submissions into the queue (the `.path` unit watches for them). Returns how many.
    ///
    /// new/ is writable by the web side, so a submission is taken only if it is a fresh job
    /// (queued, seq 1, attempt 1, nothing run yet) whose ID is not taken, and, for a kind in
    /// `kinds`, whose params pass that kind's checks; any other is removed and reported to `refused`.
    func ingest(kinds: [String: KindConfig]?, refused: (JobID, String) -> Void) throws(StoreError) -> Int
    /// Finds jobs whose runner died (their liveness lock is free) and retries or fails them (`runner_lost`).
    func recoverLostJobs(kinds: [String: KindConfig], now: Timestamp) throws(StoreError) -> [Job]
    /// Cancels queued jobs that someone asked to cancel; returns the jobs now canceled.
    func cancelRequestedQueuedJobs(now: Timestamp) throws(StoreError) -> [Job]
    /// Claims the oldest queued job whose kind has a free concurrency slot, and marks it running.
    func claimNext(kinds: [String: KindConfig], now: Timestamp) throws(StoreError) -> (any JobClaim)?
    /// Writes a new state of a claimed job; `durable` also makes the rename itself durable (final states).
    func write(_ job: Job, durable: Bool) throws(StoreError)
    /// Puts a job back in the queue after a retry or an interrupted attempt (its state already written as queued).
    func enqueue(_ id: JobID) throws(StoreError)
    /// Whether someone asked to cancel the job.
    func isCancelRequested(_ id: JobID) -> Bool
    /// Forgets a cancellation request (after the job ended).
    func clearCancelRequest(_ id: JobID)
    /// The path of the job's log, for the runner to append to.
    func logPath(for id: JobID) -> String
    /// Jobs that ended before `cutoff`, for gc.
    func finishedJobs(before cutoff: Timestamp) throws(StoreError) -> [Job]
    /// Removes an ended job, its log and any leftovers.
    func remove(_ id: JobID) throws(StoreError)
    /// Removes idempotency records made before `cutoff` (SPEC §9: keys live 24 h); `dryRun` only counts them.
    func expireIdempotencyRecords(before cutoff: Timestamp, dryRun: Bool) throws(StoreError) -> Int
}

extension RunnerStore {
    /// `ingest(kinds:refused:)` with the structural checks only.
    public func ingest() throws(StoreError) -> Int { try ingest(kinds: nil, refused: { _, _ in }) }
}
