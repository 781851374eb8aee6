import HeraldPOSIX
import HeraldPostgres
import HeraldStore
import Synchronization

/// The idle connections shared by the threads of one process: each call borrows one, or connects
/// a new one, and gives it back when it is still good. Connecting happens on the calling thread
/// (readers, the runner's workers), never on the hub's.
///
/// The pool keeps as many as were in use at once (up to `maxIdle`), and closes one only when it sat
/// unused for `idleMilliseconds`: a runner with 100 jobs writing progress holds ~100 connections
/// instead of opening a backend (a fork on the server) for most writes, as a cap of 8 made it do.
///
/// Until the schema was once found at this build's version, every new connection checks it before
/// use: a program that started while PostgreSQL was away never works on a schema of another version.
final class ConnectionPool: Sendable {
    let conninfo: String
    let applicationName: String
    private let idle = Mutex<[(connection: PostgresConnection, since: Int64)]>([])
    private let schemaVerified = Atomic(false)
    private let maxIdle: Int
    private let idleMilliseconds: Int64

    init(conninfo: String, applicationName: String, maxIdle: Int = 256, idleMilliseconds: Int64 = 60_000) {
        self.conninfo = conninfo
        self.applicationName = applicationName
        self.maxIdle = maxIdle
        self.idleMilliseconds = idleMilliseconds
    }

    /// Runs `body` on a connection. A failure of the connection itself is `unavailable`; when it
    /// happened on a connection that had been idle (PostgreSQL restarted since), `body` runs once
    /// more on a new connection, so the first request after a restart does not fail for nothing.
    @discardableResult
    func with<T>(_ body: (PostgresConnection) throws -> T) throws(StoreError) -> T {
        var reused = true
        while true {
            let connection: PostgresConnection
            if let taken = borrowIdle() {
                connection = taken
            } else {
                reused = false
                connection = try connect()
            }
            do {
                let result = try body(connection)
                giveBack(connection)
                return result
            } catch let error as PostgresError {
                if error.kind == .connection || !connection.isOK {
                    connection.close()
                    if reused { continue }
                } else {
                    giveBack(connection)
                }
                throw StoreError.unavailable("PostgreSQL: \(error)")
            } catch let error as StoreError {
                giveBack(connection)
                throw error
            } catch {
                giveBack(connection)
                throw StoreError.unavailable("PostgreSQL: \(error)")
            }
        }
    }

    /// Runs `body` in a transaction: committed when it returns, rolled back when it throws.
    func transaction<T>(_ body: (PostgresConnection) throws -> T) throws(StoreError) -> T {
        try with { connection in
            try connection.execute("BEGIN")
            do {
                let result = try body(connection)
                try connection.execute("COMMIT")
                return result
            } catch {
                _ = try? connection.execute("ROLLBACK")
                throw error
            }
        }
    }

    /// Whether the schema was found at this build's version (from then on, new connections skip the check).
    var isSchemaVerified: Bool { schemaVerified.load(ordering: .acquiring) }

    /// Connects once, checking the schema, and keeps the connection: `unavailable` when PostgreSQL
    /// cannot be reached, `unsuitable` for a schema of another version or a bad conninfo.
    func verifySchema() throws(StoreError) { giveBack(try connect()) }

    /// A new connection, its schema checked first while that was never found right.
    private func connect() throws(StoreError) -> PostgresConnection {
        let connection: PostgresConnection
        do { connection = try PostgresConnection.connect(conninfo, applicationName: applicationName) } catch {
            if error.kind == .badConninfo { throw .unsuitable(error.message) }
            throw .unavailable("PostgreSQL: \(error)")
        }
        guard !isSchemaVerified else { return connection }
        let mismatch: String?
        do { mismatch = try Schema.mismatch(connection) } catch {
            connection.close()
            throw .unavailable("PostgreSQL: \(error)")
        }
        if let mismatch {
            connection.close()
            throw .unsuitable(mismatch)
        }
        schemaVerified.store(true, ordering: .releasing)
        return connection
    }

    /// The most recently used idle connection; those idle too long are closed on the way.
    private func borrowIdle() -> PostgresConnection? {
        let now = Clock.monotonicMilliseconds()
        let (taken, stale) = idle.withLock { idle -> (PostgresConnection?, [PostgresConnection]) in
            // The oldest are at the front: the last-used end stays warm, the front ages out.
            let cut = idle.firstIndex { now - $0.since < idleMilliseconds } ?? idle.endIndex
            let stale = idle[..<cut].map(\.connection)
            idle.removeFirst(cut)
            return (idle.popLast()?.connection, stale)
        }
        stale.forEach { $0.close() }
        return taken
    }

    private func giveBack(_ connection: PostgresConnection) {
        guard connection.isOK, !connection.isInTransaction else { return connection.close() }
        let now = Clock.monotonicMilliseconds()
        let kept = idle.withLock { idle -> Bool in
            guard idle.count < maxIdle else { return false }
            idle.append((connection, now))
            return true
        }
        if !kept { connection.close() }
    }

    /// Closes every idle connection.
    func drain() {
        idle.withLock { idle in
            idle.forEach { $0.connection.close() }
            idle.removeAll()
        }
    }
}
