import Foundation
import HeraldPostgres
import HeraldPostgresTesting
import Synchronization
import Testing

@testable import HeraldPostgresStore

/// The pool against a real server: it keeps what its threads use at once.
@Suite struct ConnectionPoolTests {
    /// The backend pids 24 threads get, all borrowing at the same time.
    private func pidsOfOneRound(_ pool: ConnectionPool, threads: Int = 24) -> Set<Int> {
        let pids = Mutex(Set<Int>())
        let arrived = Atomic(0)
        let group = DispatchGroup()
        for _ in 0..<threads {
            group.enter()
            Thread {
                defer { group.leave() }
                _ = try? pool.with { connection in
                    // Hold the connection until every thread has one: they are all in use at once.
                    arrived.add(1, ordering: .relaxed)
                    while arrived.load(ordering: .relaxed) < threads { usleep(1000) }
                    let pid = try connection.execute("SELECT pg_backend_pid()::text").string(0, 0).flatMap { Int($0) }
                    pids.withLock { _ = $0.insert(pid ?? -1) }
                }
            }.start()
        }
        group.wait()
        return pids.withLock { $0 }
    }

    @Test func aPoolKeepsTheConnectionsItsThreadsUsedAtOnceInsteadOfOpeningNewOnes() throws {
        let conninfo = try PrivateCluster.require().createDatabase()
        _ = try Schema.migrate(conninfo: conninfo, webRole: nil, applicationName: "herald-test")  // the pool checks it first
        let pool = ConnectionPool(conninfo: conninfo, applicationName: "herald-test")
        defer { pool.drain() }
        let first = pidsOfOneRound(pool)
        #expect(first.count == 24)
        let second = pidsOfOneRound(pool)
        // A cap of 8 idle connections closed 16 of them after the first round: 16 new backends here.
        #expect(second.subtracting(first).isEmpty, "the second round opened \(second.subtracting(first).count) new connections")
    }
}
