import Glibc
import HeraldCore
import HeraldPOSIX
import HeraldPostgres
import HeraldStore
import Synchronization

/// A claim in PostgreSQL: the row's `claim` token. Every write is `… WHERE id = $1 AND claim = $2`,
/// so once another runner took the job over (its token replaced the old one) this claim's writes
/// match nothing and are refused: a cut-off runner never overwrites its successor (fencing).
public final class PostgresClaim: JobClaim, Sendable {
    public let job: Job
    let token: Int64
    let session: RunnerLiveness.Session
    private let store: PostgresStore
    private let ended = Atomic<Bool>(false)
    /// Where this attempt's next append starts (read once, then advanced by each append).
    private let logEnd = Mutex<Int?>(nil)

    init(store: PostgresStore, job: Job, token: Int64, session: RunnerLiveness.Session) {
        self.store = store
        self.job = job
        self.token = token
        self.session = session
    }

    var id: JobID { job.id }

    /// The liveness session this claim was made under is gone for good: its jobs are (or will be)
    /// taken over, so the claim is lost even before the database says so.
    private func checkSession() throws(StoreError) {
        if ended.load(ordering: .acquiring) || !session.isCurrent { throw .claimLost(id) }
    }

    /// A new state of the still-running job.
    public func writeProgress(_ next: Job) throws(StoreError) {
        try checkSession()
        switch store.progress.write(.init(id: id, claim: token, job: next)) {
        case .written: return
        case .claimLost: throw .claimLost(id)
        case let .failed(error): throw error
        }
    }

    /// Appends program output at the offset this attempt expects: the size moves and the chunk lands in
    /// one statement, only while the log still ends there. A retry whose first try committed (the pool
    /// runs a statement once more when a stale connection failed, and the reply may be what was lost)
    /// finds the log already past its chunk and adds nothing, so no output is ever written twice.
    public func appendLog(_ bytes: [UInt8]) throws(StoreError) {
        guard !bytes.isEmpty else { return }
        try checkSession()
        let start: Int
        if let known = logEnd.withLock({ $0 }) { start = known } else { start = try logSize() }
        let end = start + bytes.count
        let size = try store.pool.with { connection -> Int? in
            let appended = try connection.execute("""
                WITH u AS (UPDATE herald.jobs SET log_size = $5::bigint + $3 WHERE id = $1 AND claim = $2 AND log_size = $5 RETURNING id),
                     i AS (INSERT INTO herald.job_logs (job_id, start, data) SELECT id, $5, $4 FROM u RETURNING job_id)
                SELECT pg_notify('\(ChangeNotice.log.channel)', 'l ' || job_id) FROM i
                """, [.text(id.text), .int(token), .int(bytes.count), .bytes(bytes), .int(start)])
            if appended.count == 1 { return end }
            return try connection.execute("SELECT log_size FROM herald.jobs WHERE id = $1 AND claim = $2", [.text(id.text), .int(token)]).int(0, 0)
        }
        guard let size else { throw .claimLost(id) }
        guard size == end else {
            throw .corrupt("job \(id)'s log holds \(size) bytes; this attempt's append expected it to end at \(start)")
        }
        logEnd.withLock { $0 = end }
    }

    /// How many bytes the job's log holds (all attempts); this attempt appends from there.
    public func logSize() throws(StoreError) -> Int {
        try checkSession()
        let rows = try store.pool.with { try $0.execute("SELECT log_size FROM herald.jobs WHERE id = $1 AND claim = $2", [.text(id.text), .int(token)]) }
        guard let size = rows.int(0, 0) else { throw .claimLost(id) }
        logEnd.withLock { $0 = size }
        return size
    }

    /// Whether someone asked to cancel the job; `claimLost` when it was taken over.
    public func isCancelRequested() throws(StoreError) -> Bool {
        try checkSession()
        let rows = try store.pool.with { try $0.execute("SELECT cancel_requested FROM herald.jobs WHERE id = $1 AND claim = $2", [.text(id.text), .int(token)]) }
        guard let requested = rows.bool(0, 0) else { throw .claimLost(id) }
        return requested
    }

    /// Notes the attempt's process group and this boot, so a recovery on this host kills what is left of it.
    public func recordProcessGroup(_ group: Int32) {
        _ = try? store.pool.with {
            try $0.execute("UPDATE herald.jobs SET process_group = $3, boot_id = $4 WHERE id = $1 AND claim = $2",
                           [.text(id.text), .int(token), .int(group), .text(PostgresClaim.bootID)])
        }
    }

    /// Ends the attempt in one statement: its last state, the claim cleared, and the cancel request too
    /// unless the job is queued again (then the next pass cancels it).
    public func finish(_ last: Job) throws(StoreError) {
        try checkSession()
        let written = try store.pool.with { try PostgresClaim.finish($0, last, claim: token) }
        ended.store(true, ordering: .releasing)
        if !written { throw .claimLost(id) }
    }

    /// Leaves the job to recovery, as a crash would; this process's next recovery pass takes it.
    public func abandon() {
        guard !ended.exchange(true, ordering: .acquiringAndReleasing) else { return }
        store.abandoned.withLock { $0[id] = token }
    }

    /// Writes the end of an attempt (a final state, or `queued` for a retry) if `claim` still holds the job.
    static func finish(_ connection: PostgresConnection, _ last: Job, claim: Int64) throws -> Bool {
        let rows = try connection.execute("""
            WITH u AS (UPDATE herald.jobs SET state = $3, seq = $4, job = $5::json, finished_ms = $6, claim = NULL, runner = NULL,
                           process_group = NULL, boot_id = NULL, cancel_requested = cancel_requested AND $3 = 'queued'
                       WHERE id = $1 AND claim = $2 RETURNING id)
            SELECT pg_notify('\(ChangeNotice.job.channel)', 'j ' || id) FROM u
            """, [.text(last.id.text), .int(claim), .text(last.state.rawValue), .int(last.seq), .text(last.storedText),
                  .optional(last.state.isTerminal ? last.finishedAt?.milliseconds : nil)])
        return rows.count == 1
    }

    /// This boot's id: a process group number means something only on the host and boot that recorded it.
    static let bootID: String = {
        let bytes = (try? FileSystem.read("/proc/sys/kernel/random/boot_id")) ?? nil
        return String(decoding: bytes ?? [], as: UTF8.self).filter { !$0.isWhitespace }
    }()

    /// Kills what is left of a lost attempt's programs (recorded on this host, this boot).
    static func killGroup(_ group: Int32) {
        guard group > 1, !bootID.isEmpty else { return }
        _ = ChildProcess.signalGroup(group, SIGKILL)
    }
}
