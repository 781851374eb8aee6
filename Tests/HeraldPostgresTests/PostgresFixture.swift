import HeraldCore
import HeraldPOSIX
import HeraldPostgres
@testable import HeraldPostgresStore
import HeraldPostgresTesting
import HeraldStore

/// A fresh, migrated database in the private cluster, and stores on it.
final class PostgresFixture {
    let cluster: PrivateCluster
    let conninfo: String
    private var clock: Int64 = 1_764_000_000_000

    init(migrate: Bool = true, webRole: String? = nil) throws {
        cluster = try PrivateCluster.require()
        conninfo = try cluster.createDatabase()
        if migrate { _ = try Schema.migrate(try connect(), webRole: webRole) }
    }

    func connect() throws -> PostgresConnection { try PostgresConnection.connect(conninfo) }

    func store() throws -> PostgresStore { try PostgresStore(conninfo: conninfo, applicationName: "herald-test") }

    /// A later time at every call, so IDs and timestamps sort in creation order.
    func now() -> Timestamp {
        clock += 1
        return Timestamp(milliseconds: clock)
    }

    /// A new queued job of `kind` (not submitted).
    func newJob(_ kind: String = "report", params: [String: String] = [:], owner: String? = nil) -> Job {
        let time = now()
        return Job(id: JobID(milliseconds: UInt64(time.milliseconds), random: RandomSource.bytes(10)), kind: kind, params: params, owner: owner, now: time)
    }

    /// Submits a new job of `kind` through `store`.
    @discardableResult
    func submit(_ store: PostgresStore, _ kind: String = "report") throws -> Job {
        let job = newJob(kind)
        try store.submit(job)
        return job
    }
}

/// Kinds for claims: `report` unlimited with one retry, `limited` at most 2 at once.
let testKinds: [String: KindConfig] = [
    "report": KindConfig(name: "report", executor: .demo, retries: 1),
    "limited": KindConfig(name: "limited", executor: .demo, concurrency: 2),
]
