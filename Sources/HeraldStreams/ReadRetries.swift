import HeraldCore

/// The jobs whose read failed (the database away, no descriptor left), read again a while later.
///
/// A failed read used to wait for the job's next change, and a job that has ended changes no more:
/// its streams never got its last state, or its last log chunk, and never ended. Pure: the hub passes the time.
struct ReadRetries {
    /// How long after a failed read its job is read again.
    static let delayMilliseconds: Int64 = 1000

    private var jobs: Set<JobID> = []
    /// When the jobs whose read failed are read again, if any did.
    private(set) var dueAt: Int64?

    /// The jobs among `asked` that `JobStore.jobs(ids:)` left out of its answer `read`: those it could not read now.
    static func leftOut(_ asked: some Collection<JobID>, by read: [(id: JobID, job: Job?)]) -> [JobID] {
        guard read.count < asked.count else { return [] }
        let got = Set(read.map(\.id))
        return asked.filter { !got.contains($0) }
    }

    /// A read of `id` failed at `now`; a later failure does not put off an earlier one's retry.
    mutating func failed(_ id: JobID, now: Int64) {
        jobs.insert(id)
        dueAt = min(dueAt ?? .max, now + ReadRetries.delayMilliseconds)
    }

    /// The jobs to read again at `now` (none before `dueAt`).
    mutating func due(now: Int64) -> Set<JobID> {
        guard let at = dueAt, now >= at else { return [] }
        defer {
            jobs.removeAll()
            dueAt = nil
        }
        return jobs
    }
}
