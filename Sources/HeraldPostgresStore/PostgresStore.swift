// The PostgreSQL store: any number of herald-fcgi and herald-runner processes, on any number of
// hosts, share one database (SPEC §8; docs/PROTOCOL.md, "The PostgreSQL store").
//
//   herald.jobs        one row a job: its JSON as the runner wrote it, and the columns claims,
//                      listing and gc need (state, kind, owner, seq, claim, runner, cancel flag, log size)
//   herald.job_logs    the job's output in chunks, keyed by their start offset
//   herald.runners     runner processes; alive = the session advisory lock (runner, id) is held
//   herald.idempotency_keys   Idempotency-Key records (hashes only)
//
// Every write NOTIFYs `herald` with ids only, in the same transaction, so a change is announced
// exactly when it is visible.
import HeraldCore
import HeraldPostgres
import HeraldStore
import Synchronization

/// The PostgreSQL store, shared by herald-fcgi and herald-runner.
public final class PostgresStore: RunnerStore, Sendable {
    let pool: ConnectionPool
    /// Every claim's progress writes, committed together under load.
    let progress: ProgressBatch
    /// The runner's liveness session, made at the first claim (the web side never has one).
    let liveness: Mutex<RunnerLiveness?> = Mutex(nil)
    /// Claims this process abandoned: its own recovery pass retries or fails them (its liveness lock stays held).
    let abandoned = Mutex<[JobID: Int64]>([:])
    /// Told when this runner's liveness session was given up (its watchers then report `.everything`).
    let sessionLostObservers = Mutex<[@Sendable () -> Void]>([])

    /// Why PostgreSQL could not be reached when the store was opened waiting for it, or nil.
    public let unreachableAtStart: String?

    /// Opens the store at `conninfo` and checks the schema's version: another version is `unsuitable`
    /// (exit 78, naming `herald-runner migrate`), an unreachable database `unavailable` (69) — unless
    /// `waitingForDatabase` (the daemons): then the store opens anyway, its calls are `unavailable`
    /// until PostgreSQL is back, and the first connection that succeeds checks the version instead.
    public init(conninfo: String, applicationName: String, waitingForDatabase: Bool = false) throws(StoreError) {
        pool = ConnectionPool(conninfo: conninfo, applicationName: applicationName)
        progress = ProgressBatch(pool: pool)
        do {
            try pool.verifySchema()
            unreachableAtStart = nil
        } catch {
            guard waitingForDatabase, case let .unavailable(why) = error else { throw error }
            unreachableAtStart = why
        }
    }

    deinit {
        liveness.withLock { $0?.stop() }
        pool.drain()
    }

    // MARK: JobStore

    public func submit(_ job: Job) throws(StoreError) {
        try pool.with { try $0.execute("SELECT herald.submit($1::json)", [.text(job.storedText)]) }
    }

    public func submit(_ job: Job, idempotency record: IdempotencyRecord) throws(StoreError) -> IdempotentSubmit {
        let rows = try pool.with {
            try $0.execute("SELECT r_outcome, r_job FROM herald.submit_idempotent($1, $2, $3::json, $4)",
                           [.text(record.keyHash), .text(record.bodyHash), .text(job.storedText), .int(IdempotencyRecord.lifetime.milliseconds)])
        }
        switch rows.string(0, 0) {
        case "created": return .created(job)
        case "reused": return .keyReused
        default: return .repeated(try Job.stored(rows.string(0, 1)))
        }
    }

    public func job(_ id: JobID) throws(StoreError) -> Job? {
        let rows = try pool.with { try $0.execute("SELECT job FROM herald.jobs WHERE id = $1", [.text(id.text)]) }
        return rows.isEmpty ? nil : try Job.stored(rows.string(0, 0))
    }

    /// Every read is a round trip to the database.
    public var readsAreRoundTrips: Bool { true }

    public func jobs(ids: [JobID]) -> [(id: JobID, job: Job?)] {
        guard !ids.isEmpty else { return [] }
        // Ids are 26 letters and digits: the array literal needs no quoting.
        guard let rows = try? pool.with({ try $0.execute("SELECT id, job FROM herald.jobs WHERE id = ANY($1::text[])",
                                                         [.text("{" + ids.map(\.text).joined(separator: ",") + "}")]) }) else { return [] }
        var found: [String: String] = [:]
        for row in 0..<rows.count { if let id = rows.string(row, 0) { found[id] = rows.string(row, 1) } }
        return ids.compactMap { id in
            guard let text = found[id.text] else { return (id, nil) }
            return (try? Job.stored(text)).map { (id, $0) }  // a row that does not decode is left out alone
        }
    }

    public func jobs(_ filter: JobFilter) throws(StoreError) -> [Job] {
        var conditions: [String] = []
        var params: [PostgresValue] = []
        func condition(_ sql: String, _ value: String?) {
            guard let value else { return }
            params.append(.text(value))
            conditions.append(sql.replacingOccurrences(of: "?", with: "$\(params.count)"))
        }
        condition("state = ?", filter.state?.rawValue)
        condition("kind = ?", filter.kind)
        condition("owner = ?", filter.owner)
        condition("id < ?", filter.before?.text)
        params.append(.int(max(0, filter.limit)))
        let sql = "SELECT job FROM herald.jobs" + (conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND "))
            + " ORDER BY id DESC LIMIT $\(params.count)"
        let rows = try pool.with { try $0.execute(sql, params) }
        var jobs: [Job] = []
        for row in 0..<rows.count { jobs.append(try Job.stored(rows.string(row, 0))) }
        return jobs
    }

    public func jobCounts() throws(StoreError) -> [JobState: Int] {
        let rows = try pool.with { try $0.execute("SELECT state, count(*) FROM herald.jobs GROUP BY state") }
        var counts: [JobState: Int] = [:]
        for row in 0..<rows.count {
            if let state = rows.string(row, 0).flatMap(JobState.init(rawValue:)) { counts[state] = rows.int(row, 1) ?? 0 }
        }
        return counts
    }

    public func requestCancel(_ id: JobID) throws(StoreError) {
        try pool.with { try $0.execute("SELECT herald.request_cancel($1)", [.text(id.text)]) }
    }

    /// Past any log (2^48 bytes): offsets from a URL are clamped to it, so the sums in SQL cannot overflow.
    static let logOffsetLimit = 1 << 48

    public func log(_ id: JobID, from offset: Int, maxBytes: Int) throws(StoreError) -> LogRead {
        // One statement, one snapshot: the size and the chunks agree. The chunk holding `offset` is
        // found by the index (the last start at or before it), not by scanning the chunks before it,
        // and each chunk yields only its part of [offset, offset + maxBytes): a chunk may be megabytes
        // (a writer's one append), and the hub reads 64 KiB at a time on its own thread.
        let rows = try pool.with {
            try $0.execute("""
                SELECT j.log_size, l.start,
                       substring(l.data FROM (least(greatest($2::bigint - l.start, 0), length(l.data)) + 1)::int
                                        FOR greatest(least(l.start + length(l.data), $2::bigint + $3::bigint) - greatest(l.start, $2::bigint), 0)::int)
                FROM herald.jobs j
                LEFT JOIN herald.job_logs l ON l.job_id = j.id AND l.start < $2::bigint + $3::bigint
                    AND l.start >= coalesce((SELECT max(start) FROM herald.job_logs WHERE job_id = $1 AND start <= $2::bigint), 0)
                WHERE j.id = $1 ORDER BY l.start
                """, [.text(id.text), .int(min(max(0, offset), Self.logOffsetLimit)), .int(min(max(0, maxBytes), Self.logOffsetLimit))])
        }
        guard let size = rows.int(0, 0) else { return LogRead(bytes: [], atEnd: true) }
        var bytes: [UInt8] = []
        for row in 0..<rows.count {
            guard let slice = rows.bytes(row, 2) else { continue }
            bytes += slice
        }
        return LogRead(bytes: bytes, atEnd: offset + bytes.count >= size)
    }

    public func watch() throws(StoreError) -> any StoreWatcher {
        try watcher(channels: [Schema.channel, Schema.changesChannel])
    }

    /// Submissions and cancel requests only: a runner's LISTEN connection is not woken by status and log writes.
    public func watchRunnerChanges() throws(StoreError) -> any StoreWatcher {
        try watcher(channels: [Schema.channel])
    }

    private func watcher(channels: [String]) throws(StoreError) -> PostgresWatcher {
        // PostgreSQL away since the start: no wait for LISTEN (the watcher reports `.everything` once it listens).
        let watcher = try PostgresWatcher(conninfo: pool.conninfo, applicationName: pool.applicationName, channels: channels,
                                          waitForListen: pool.isSchemaVerified)
        sessionLostObservers.withLock { $0.append { [weak watcher] in watcher?.reportEverything() } }
        return watcher
    }
}

extension Job {
    /// The job as stored in `herald.jobs.job`.
    var storedText: String { json(urlPrefix: nil).text }

    /// A job read back from `herald.jobs.job`.
    static func stored(_ text: String?) throws(StoreError) -> Job {
        guard let text, let json = try? JSON.parse(text), let job = Job(json: json) else {
            throw .corrupt("a row of herald.jobs does not hold a job")
        }
        return job
    }
}

extension String {
    fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: Character(target), omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
