import Foundation
import HeraldCore
import HeraldStore

/// The progress writes of every claim of one process, committed together (group commit).
///
/// A writer arriving while a batch is on its way to PostgreSQL waits and goes with the next one, so
/// under load one transaction (and one NOTIFY naming all its ids) carries many jobs' progress, while a
/// write alone still goes at once. A runner with 100 jobs at 10 reports/s made 1,000 transactions and
/// NOTIFYs a second, and each web node read each changed job on its own; batched, PostgreSQL's work per
/// status write falls with the load instead of saturating the machine (docs/BENCHMARKS.md).
final class ProgressBatch: @unchecked Sendable {
    /// One claim's new state.
    struct Write {
        let id: JobID
        let claim: Int64
        let job: Job
    }

    /// What became of a write: written, refused (the claim was taken over), or not known (the batch failed).
    enum Outcome {
        case written, claimLost
        case failed(StoreError)
    }

    /// The most writes one statement carries: their ids fit one NOTIFY payload.
    static let maxWrites = ChangeNotice.maxPayloadBytes / 27

    private let pool: ConnectionPool
    private let condition = NSCondition()
    // Behind `condition`: writes waiting for the next batch, whether one is being written, and outcomes by ticket.
    private var waiting: [(ticket: Int, write: Write)] = []
    private var writing = false
    private var outcomes: [Int: Outcome] = [:]
    private var nextTicket = 0
    private var lastBatchSize = 0

    /// How long a batch waits for more writers once writers overlap: a few ms of delay against
    /// several times fewer transactions, NOTIFYs and web-node reads.
    static let gatherSeconds = 0.004

    init(pool: ConnectionPool) { self.pool = pool }

    /// Writes `write` with whatever else is waiting; returns once its batch committed or failed.
    func write(_ write: Write) -> Outcome {
        condition.lock()
        defer { condition.unlock() }
        let ticket = nextTicket
        nextTicket += 1
        waiting.append((ticket, write))
        while true {
            if let outcome = outcomes.removeValue(forKey: ticket) { return outcome }
            if writing {
                condition.wait()
                continue
            }
            // No batch is on its way: this writer takes what waits (its own write among it) and writes it.
            writing = true
            // Writers overlap (the last batch or this one has company): more are on their way, so wait a
            // little for them. A writer alone (one busy job) never waits.
            if lastBatchSize > 1 || waiting.count > 1 {
                let until = Date(timeIntervalSinceNow: ProgressBatch.gatherSeconds)
                while waiting.count < ProgressBatch.maxWrites, condition.wait(until: until) {}
            }
            let batch = Array(waiting.prefix(ProgressBatch.maxWrites))
            waiting.removeFirst(batch.count)
            lastBatchSize = batch.count
            condition.unlock()
            let results = commit(batch.map(\.write))
            condition.lock()
            for (entry, outcome) in zip(batch, results) { outcomes[entry.ticket] = outcome }
            writing = false
            condition.broadcast()
        }
    }

    /// One transaction for `writes`, each fenced by its claim, and one NOTIFY with the ids it wrote.
    private func commit(_ writes: [Write]) -> [Outcome] {
        // Ids are letters and digits, numbers are numbers, a job's stored text is JSON: the array needs no escaping.
        let rows = writes.map { #"{"id":"\#($0.id.text)","claim":\#($0.claim),"seq":\#($0.job.seq),"job":\#($0.job.storedText)}"# }
        do {
            let written = try pool.with { connection in
                // Progress need not be durable (docs/PROTOCOL.md): its commit does not wait for the WAL flush
                // (synchronous_commit off for this transaction alone). A crash of PostgreSQL may lose the last
                // progress, never a transition: those commit synchronously, and flush every earlier one with them.
                try connection.execute("""
                    WITH v AS (SELECT set_config('synchronous_commit', 'off', true)),
                         w AS (SELECT * FROM json_to_recordset($1::json) AS w(id text, claim bigint, seq bigint, job json)),
                         u AS (UPDATE herald.jobs j SET seq = w.seq, job = w.job FROM w
                               WHERE j.id = w.id AND j.claim = w.claim AND j.state = 'running' RETURNING j.id)
                    SELECT string_agg(id, ' '), pg_notify('\(ChangeNotice.job.channel)', 'j ' || string_agg(id, ' ')) FROM u, v HAVING count(*) > 0
                    """, [.text("[" + rows.joined(separator: ",") + "]")])
            }
            let ids = Set((written.isEmpty ? nil : written.string(0, 0))?.split(separator: " ").map(String.init) ?? [])
            return writes.map { ids.contains($0.id.text) ? .written : .claimLost }
        } catch {
            return writes.map { _ in .failed(error) }
        }
    }
}
