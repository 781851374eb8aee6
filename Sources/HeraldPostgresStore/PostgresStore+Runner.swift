import Glibc
import HeraldCore
import HeraldPOSIX
import HeraldPostgres
import HeraldStore

extension PostgresStore {
    /// How long a runner's lock must have been seen free before its jobs are taken: its own
    /// reconnect after a PostgreSQL restart (a second or two) keeps them.
    static let recoveryGraceSeconds = 5

    /// Submissions are rows from the start: there is nothing to take in.
    public func ingest(kinds: [String: KindConfig]?, refused: (String, String) -> Void) throws(StoreError) -> Int { 0 }

    /// Claims the oldest queued job of `kinds` whose kind has a free slot across every runner.
    ///
    /// `FOR UPDATE SKIP LOCKED` keeps claimers from waiting on each other's rows; a limited kind's
    /// running rows are counted under a transaction-scoped advisory lock on the kind, taken with
    /// `try` (a claimer never waits for another, so two can never deadlock), so two claimers can
    /// never both see the last free slot.
    public func claimNext(kinds: [String: KindConfig], now: Timestamp) throws(StoreError) -> (any JobClaim)? {
        guard !kinds.isEmpty else { return nil }
        let session = try runnerSession()
        let names = PostgresValue.textArray(Array(kinds.keys))
        return try pool.transaction { connection -> (any JobClaim)? in
            let running = try connection.execute(
                "SELECT kind, count(*) FROM herald.jobs WHERE state = 'running' AND kind = ANY($1::text[]) GROUP BY kind", [names])
            var full = Set<String>()
            for row in 0..<running.count {
                if let kind = running.string(row, 0), let limit = kinds[kind]?.concurrency, (running.int(row, 1) ?? 0) >= limit { full.insert(kind) }
            }
            let candidates = try connection.execute("""
                SELECT id, kind, job FROM herald.jobs
                WHERE state = 'queued' AND kind = ANY($1::text[]) AND NOT kind = ANY($2::text[])
                ORDER BY id LIMIT 32 FOR UPDATE SKIP LOCKED
                """, [names, .textArray(Array(full))])
            for row in 0..<candidates.count {
                guard let kindName = candidates.string(row, 1), !full.contains(kindName), let kind = kinds[kindName] else { continue }
                if let limit = kind.concurrency {
                    let locked = try connection.execute("SELECT pg_try_advisory_xact_lock($1, hashtext($2))",
                                                        [.int(Schema.LockSpace.kind.rawValue), .text(kindName)])
                    let count = try connection.execute("SELECT count(*) FROM herald.jobs WHERE state = 'running' AND kind = $1", [.text(kindName)])
                    guard locked.bool(0, 0) == true, (count.int(0, 0) ?? limit) < limit else {
                        full.insert(kindName)
                        continue
                    }
                }
                guard let job = try? Job.stored(candidates.string(row, 2)),
                      let started = job.applying(.start, at: now, retries: kind.retries) else { continue }  // a damaged row costs only itself
                let claimed = try connection.execute("""
                    UPDATE herald.jobs SET state = 'running', seq = $2, job = $3::json, claim = nextval('herald.claims'), runner = $4,
                        process_group = NULL, boot_id = NULL
                    WHERE id = $1 RETURNING claim
                    """, [.text(job.id.text), .int(started.seq), .text(started.storedText), .int(session.runner)])
                try notify(connection, .job, [job.id])
                guard let token = claimed.string(0, 0).flatMap({ Int64($0) }) else { continue }
                return PostgresClaim(store: self, job: started, token: token, session: session)
            }
            return nil
        }
    }

    /// Retries or fails (`runner_lost`) the running jobs of runners whose liveness lock has been free
    /// for `recoveryGraceSeconds` (dead, or their host cut off), and those this process abandoned.
    public func recoverLostJobs(kinds: [String: KindConfig], now: Timestamp) throws(StoreError) -> [Job] {
        let runners = try pool.with { try $0.execute("SELECT DISTINCT runner FROM herald.jobs WHERE state = 'running'") }
        var recovered: [Job] = []
        for row in 0..<runners.count {
            guard let runner = runners.int(row, 0) else { continue }
            recovered += try pool.transaction { connection -> [Job] in
                let free = try connection.execute("SELECT pg_try_advisory_xact_lock($1, $2)", [.int(Schema.LockSpace.runner.rawValue), .int(runner)])
                guard free.bool(0, 0) == true else { return [] }
                let due = try connection.execute("""
                    INSERT INTO herald.runners AS r (id, host, pid, seen_free_at) VALUES ($1, '', 0, now())
                    ON CONFLICT (id) DO UPDATE SET seen_free_at = coalesce(r.seen_free_at, now())
                    RETURNING now() - seen_free_at >= $2 * interval '1 second'
                    """, [.int(runner), .int(Self.recoveryGraceSeconds)])
                guard due.bool(0, 0) == true else { return [] }
                let lost = try connection.execute(
                    "SELECT job, claim, process_group, boot_id FROM herald.jobs WHERE state = 'running' AND runner = $1 ORDER BY id FOR UPDATE",
                    [.int(runner)])
                var jobs: [Job] = []
                for k in 0..<lost.count {
                    if let group = lost.int(k, 2).map(Int32.init), lost.string(k, 3) == PostgresClaim.bootID { PostgresClaim.killGroup(group) }
                    guard let job = try? Job.stored(lost.string(k, 0)), let claim = lost.string(k, 1).flatMap({ Int64($0) }) else { continue }
                    if let next = try endLostAttempt(connection, job, claim: claim, kinds: kinds, now: now) { jobs.append(next) }
                }
                try connection.execute("DELETE FROM herald.runners WHERE id = $1", [.int(runner)])
                return jobs
            }
        }
        for (id, claim) in abandoned.withLock({ $0 }) {
            recovered += try pool.transaction { connection -> [Job] in
                let rows = try connection.execute("SELECT job FROM herald.jobs WHERE id = $1 AND claim = $2 FOR UPDATE", [.text(id.text), .int(claim)])
                guard let job = try? Job.stored(rows.string(0, 0)) else { return [] }
                return try endLostAttempt(connection, job, claim: claim, kinds: kinds, now: now).map { [$0] } ?? []
            }
            _ = abandoned.withLock { $0.removeValue(forKey: id) }
        }
        return recovered
    }

    /// Writes the end of an attempt whose runner is gone: `runner_lost`, retried if the kind has retries left.
    private func endLostAttempt(_ connection: PostgresConnection, _ job: Job, claim: Int64, kinds: [String: KindConfig], now: Timestamp) throws -> Job? {
        let lost = JobError(.runnerLost, "the runner running attempt \(job.attempt) stopped unexpectedly")
        guard let next = job.applying(.aborted(lost), at: now, retries: kinds[job.kind]?.retries ?? 0) else { return nil }
        return try PostgresClaim.finish(connection, next, claim: claim) ? next : nil
    }

    /// Cancels queued jobs someone asked to cancel.
    public func cancelRequestedQueuedJobs(now: Timestamp) throws(StoreError) -> [Job] {
        try pool.transaction { connection -> [Job] in
            let rows = try connection.execute(
                "SELECT job FROM herald.jobs WHERE cancel_requested AND state = 'queued' ORDER BY id LIMIT 500 FOR UPDATE SKIP LOCKED")
            var canceled: [Job] = []
            for row in 0..<rows.count {
                guard let job = try? Job.stored(rows.string(row, 0)), let next = job.applying(.cancel, at: now, retries: 0) else { continue }
                try connection.execute("""
                    UPDATE herald.jobs SET state = $2, seq = $3, job = $4::json, finished_ms = $5, cancel_requested = false WHERE id = $1
                    """, [.text(next.id.text), .text(next.state.rawValue), .int(next.seq), .text(next.storedText), .optional(next.finishedAt?.milliseconds)])
                canceled.append(next)
            }
            try notify(connection, .job, canceled.map(\.id))
            return canceled
        }
    }

    /// Removes up to `limit` jobs that ended before `cutoff` (their logs go with them), oldest first,
    /// in one short transaction; `dryRun` removes nothing and returns every such job.
    public func removeFinishedJobs(before cutoff: Timestamp, limit: Int, dryRun: Bool) throws(StoreError) -> [Job] {
        try pool.transaction { connection -> [Job] in
            let rows = dryRun
                ? try connection.execute("SELECT job FROM herald.jobs WHERE finished_ms < $1 ORDER BY finished_ms, id", [.int(cutoff.milliseconds)])
                : try connection.execute("""
                    DELETE FROM herald.jobs WHERE id IN (
                        SELECT id FROM herald.jobs WHERE finished_ms < $1 ORDER BY finished_ms, id LIMIT $2 FOR UPDATE SKIP LOCKED)
                    RETURNING job
                    """, [.int(cutoff.milliseconds), .int(max(0, limit))])
            var jobs: [Job] = []
            for row in 0..<rows.count { if let job = try? Job.stored(rows.string(row, 0)) { jobs.append(job) } }
            if !dryRun { try notify(connection, .job, jobs.map(\.id)) }
            return jobs.sorted { ($0.finishedAt ?? $0.updatedAt, $0.id) < ($1.finishedAt ?? $1.updatedAt, $1.id) }
        }
    }

    /// Removes idempotency records made before `cutoff` (in batches); `dryRun` only counts them.
    public func expireIdempotencyRecords(before cutoff: Timestamp, dryRun: Bool) throws(StoreError) -> Int {
        let seconds = PostgresValue.text(String(Double(cutoff.milliseconds) / 1000))
        if dryRun {
            return try pool.with { try $0.execute("SELECT count(*) FROM herald.idempotency_keys WHERE created < to_timestamp($1)", [seconds]) }.int(0, 0) ?? 0
        }
        var total = 0
        while true {
            let removed = try pool.with {
                try $0.execute("""
                    DELETE FROM herald.idempotency_keys WHERE key_hash IN (
                        SELECT key_hash FROM herald.idempotency_keys WHERE created < to_timestamp($1) LIMIT 1000)
                    """, [seconds])
            }.affected
            total += removed
            if removed < 1000 { return total }
        }
    }

    /// NOTIFYs `ids` (in payloads under the cap); delivered when the transaction commits.
    func notify(_ connection: PostgresConnection, _ notice: ChangeNotice, _ ids: [JobID]) throws {
        for payload in notice.payloads(ids) {
            try connection.execute("SELECT pg_notify($1, $2)", [.text(notice.channel), .text(payload)])
        }
    }

    /// This runner's liveness session, started at the first claim; `unavailable` while it is lost.
    func runnerSession() throws(StoreError) -> RunnerLiveness.Session {
        let live = liveness.withLock { live -> RunnerLiveness in
            if let live { return live }
            let made = RunnerLiveness(conninfo: pool.conninfo, applicationName: pool.applicationName) { [weak self] in
                self?.sessionLostObservers.withLock { $0.forEach { $0() } }
            }
            live = made
            return made
        }
        guard let session = live.waitForSession(milliseconds: 3000) else {
            throw .unavailable("PostgreSQL: this runner holds no liveness session (\(live.lastError ?? "connecting"))")
        }
        return session
    }
}
