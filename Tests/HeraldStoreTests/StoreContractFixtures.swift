import Foundation
import HeraldCore
import HeraldPOSIX
import HeraldPostgres
import HeraldPostgresStore
import HeraldPostgresTesting
import Synchronization
import Testing
@testable import HeraldStore

/// A kind of store the contract runs against. A new store is one more entry in `all` (PostgreSQL:
/// a fixture that opens a fresh database of a private cluster).
struct ContractStoreKind: Sendable, CustomTestStringConvertible {
    let name: String
    /// Opens a fresh, empty store.
    let open: @Sendable () throws -> ContractStore

    var testDescription: String { name }

    static let memory = ContractStoreKind(name: "memory") {
        let store = MemoryStore()
        return ContractStore(store: store, another: { store }, close: {})
    }

    static let directory = ContractStoreKind(name: "directory") {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("herald-contract-\(UUID().uuidString)").path
        let store = try DirectoryStore(root: root, create: true)
        return ContractStore(store: store, another: { try DirectoryStore(root: root, create: false) },
                             close: { try? FileManager.default.removeItem(atPath: root) })
    }

    /// A fresh, migrated database in this test process's private cluster; `another` is a second
    /// store on it, with its own connections and liveness session (another runner).
    static let postgres = ContractStoreKind(name: "postgres") {
        let conninfo = try PrivateCluster.require().createDatabase()
        _ = try Schema.migrate(try PostgresConnection.connect(conninfo), webRole: nil)
        let store = try PostgresStore(conninfo: conninfo, applicationName: "herald-contract")
        return ContractStore(store: store, another: { try PostgresStore(conninfo: conninfo, applicationName: "herald-contract") }, close: {})
    }

    /// Every store the contract holds for: PostgreSQL where its server binaries are installed
    /// (`make test` installs them; `PostgresContractPresence` says so when they are not).
    static let all: [ContractStoreKind] = [.memory, .directory] + (PrivateCluster.serverBinaries() != nil ? [.postgres] : [])
}

/// One fresh store for one contract case, with a clock and helpers; closed when the case ends.
final class ContractStore {
    let store: any RunnerStore
    /// Another handle on the same store, as a second runner (process, host) has.
    let another: () throws -> any RunnerStore
    private let close: () -> Void
    private var clock: Int64 = 1_764_000_000_000

    init(store: any RunnerStore, another: @escaping () throws -> any RunnerStore, close: @escaping () -> Void) {
        self.store = store
        self.another = another
        self.close = close
    }

    deinit { close() }

    /// A later time at every call, so IDs and timestamps sort in creation order.
    func now() -> Timestamp {
        clock += 1
        return Timestamp(milliseconds: clock)
    }

    /// A fresh job of `kind`, not submitted.
    func fresh(_ kind: String = "report", params: [String: String] = [:], owner: String? = nil) -> Job {
        let time = now()
        return Job(id: JobID(milliseconds: UInt64(time.milliseconds), random: RandomSource.bytes(10)), kind: kind, params: params,
                   owner: owner, now: time)
    }

    /// Submits a job and lets the store take it in, as a runner's pass does; returns it.
    @discardableResult
    func submit(_ kind: String = "report", owner: String? = nil) throws -> Job {
        let job = fresh(kind, owner: owner)
        try store.submit(job)
        _ = try store.ingest()
        return job
    }

    /// Claims the next job of `kinds`, failing the case when there is none.
    func claim(_ kinds: [String: KindConfig] = ContractStore.kinds(), from store: (any RunnerStore)? = nil,
               sourceLocation: SourceLocation = #_sourceLocation) throws -> any JobClaim {
        try #require(try (store ?? self.store).claimNext(kinds: kinds, now: now()), sourceLocation: sourceLocation)
    }

    /// The claimed job, ended by `event` now.
    func ended(_ claim: any JobClaim, _ event: JobEvent = .exited(status: 0), retries: Int = 0) throws -> Job {
        try #require(claim.job.applying(event, at: now(), retries: retries))
    }

    /// The job as the store has it.
    func read(_ id: JobID) throws -> Job { try #require(try store.job(id)) }

    /// The changes `watcher` reports within a second, gathered until `wanted` are all among them.
    func changes(_ watcher: any StoreWatcher, until wanted: Set<StoreChange>) throws -> Set<StoreChange> {
        var seen = Set<StoreChange>()
        let deadline = Clock.monotonicMilliseconds() + 1000
        while !wanted.isSubset(of: seen), Clock.monotonicMilliseconds() < deadline {
            seen.formUnion(try watcher.changes())
            Clock.sleep(milliseconds: 5)
        }
        return seen
    }

    static func kinds(concurrency: Int? = nil, retries: Int = 0) -> [String: KindConfig] {
        ["report": KindConfig(name: "report", executor: .command(["/bin/true"]), concurrency: concurrency, retries: retries),
         "export": KindConfig(name: "export", executor: .command(["/bin/true"]))]
    }
}

/// Shows, as a skipped test with its reason, that the contract ran without PostgreSQL.
@Suite struct PostgresContractPresence {
    @Test(.enabled(if: PrivateCluster.serverBinaries() != nil,
                   "PostgreSQL server binaries are missing (apt-get install postgresql): the contract ran without the postgres store"))
    func theContractRunsAgainstPostgres() {
        #expect(ContractStoreKind.all.contains { $0.name == "postgres" })
    }
}

/// Submits each job through its own store handle at once, a thread each, all under `key`: exactly one
/// is created, every other submit gets that job back, and `listing` holds that one job alone.
func expectOneJobFromConcurrentSubmits(_ submits: [(job: Job, store: any JobStore)], key: IdempotencyRecord,
                                       listing: any JobStore) throws {
    let outcomes = Mutex<[IdempotentSubmit?]>([])
    let threads = submits.map { job, store in
        Thread {
            let outcome = try? store.submit(job, idempotency: key)
            outcomes.withLock { $0.append(outcome) }
        }
    }
    threads.forEach { $0.start() }
    while outcomes.withLock({ $0.count }) < submits.count { Thread.sleep(forTimeInterval: 0.005) }
    let all = outcomes.withLock { $0 }
    let created = all.compactMap { if case let .created(job)? = $0 { return job } else { return nil } }
    let repeated = all.compactMap { if case let .repeated(job)? = $0 { return job } else { return nil } }
    #expect(created.count == 1 && repeated.count == submits.count - 1, "\(all)")
    #expect(repeated.allSatisfy { $0.id == created.first?.id })
    #expect(try listing.jobs(JobFilter()).count == 1)
}
