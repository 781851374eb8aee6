// A runner's liveness in PostgreSQL: a session advisory lock (runner, ID) held on a connection of
// its own, pinged every second by a thread of its own. PostgreSQL frees the lock when the session
// ends: at once when the process dies (its socket closes), and within the server-side keepalive
// bound (~19 s) when its host dies or is cut off. Other runners' recovery passes take the jobs of
// a runner whose lock has been free for `recoveryGraceSeconds`.
//
// The runner side of the same bound: a lost session that cannot be taken again within
// `reclaimWindowMilliseconds` is given up, and with it every claim made under it (they throw
// `claimLost`, so their programs are stopped) — well before the server frees the lock and the
// grace runs out, so a job's two attempts never run at once. A session regained in time (a
// PostgreSQL restart) keeps its claims.
import Foundation
import Glibc
import HeraldPOSIX
import HeraldPostgres
import Synchronization

final class RunnerLiveness: @unchecked Sendable {
    /// What a claim is made under: the runner ID whose lock is held, and the epoch of that holding.
    struct Session: Sendable {
        let runner: Int32
        let epoch: Int
        let liveness: RunnerLiveness
        /// False once the session was given up: claims made under it are lost.
        var isCurrent: Bool { liveness.state.withLock { $0.epoch == epoch } }
    }

    private struct State {
        var runner: Int32?
        var epoch = 0
        var held = false
        var stopped = false
        var lastError: String?
    }

    static let pingMilliseconds = 1000
    static let reclaimWindowMilliseconds: Int64 = 3000
    /// The client gives up on an unanswered ping after 3 s; the server keeps the session (and the
    /// lock) for 10 + 3 × 3 s of silence: the runner always lets go first.
    static let clientSettings = [("connect_timeout", "2"), ("tcp_user_timeout", "3000"),
                                 ("keepalives", "1"), ("keepalives_idle", "1"), ("keepalives_interval", "1"), ("keepalives_count", "2")]
    static let serverSettings = "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 3; SET tcp_keepalives_count = 3; SET tcp_user_timeout = 19000"

    private let state = Mutex(State())
    private let conninfo: String
    private let applicationName: String
    private let onLost: @Sendable () -> Void

    init(conninfo: String, applicationName: String, onLost: @escaping @Sendable () -> Void) {
        self.conninfo = conninfo
        self.applicationName = applicationName
        self.onLost = onLost
        let thread = Thread { [self] in run() }
        thread.name = "herald-liveness"
        thread.start()
    }

    var lastError: String? { state.withLock { $0.lastError } }

    /// The current session, waiting up to `milliseconds` for one; nil when there is none.
    func waitForSession(milliseconds: Int64) -> Session? {
        let deadline = Clock.monotonicMilliseconds() + milliseconds
        while true {
            if let session = state.withLock({ s -> Session? in
                guard s.held, let runner = s.runner else { return nil }
                return Session(runner: runner, epoch: s.epoch, liveness: self)
            }) { return session }
            if Clock.monotonicMilliseconds() >= deadline { return nil }
            Clock.sleep(milliseconds: 10)
        }
    }

    /// Ends the thread; closing its connection frees the lock.
    func stop() { state.withLock { $0.stopped = true } }

    private func run() {
        var connection: PostgresConnection?
        var lostAt: Int64?
        while !state.withLock({ $0.stopped }) {
            if let live = connection {
                Clock.sleep(milliseconds: Self.pingMilliseconds)
                do { try live.execute("SELECT 1") } catch {
                    live.close()
                    connection = nil
                    lostAt = Clock.monotonicMilliseconds()
                    state.withLock {
                        $0.held = false
                        $0.lastError = error.description
                    }
                }
                continue
            }
            if let since = lostAt, Clock.monotonicMilliseconds() - since > Self.reclaimWindowMilliseconds {
                giveUp()
                lostAt = nil
            }
            do {
                connection = try hold()
                lostAt = nil
            } catch {
                state.withLock { $0.lastError = "\(error)" }
                if lostAt == nil, state.withLock({ $0.runner != nil }) { lostAt = Clock.monotonicMilliseconds() }
                Clock.sleep(milliseconds: 250)
            }
        }
        connection?.close()
    }

    /// The session's claims are lost: the next session takes a new runner ID, and the old one's jobs go to recovery.
    private func giveUp() {
        state.withLock {
            $0.epoch += 1
            $0.runner = nil
            $0.held = false
        }
        runnerLog("gave up a lost liveness session: this runner's running jobs are left to recovery")
        onLost()
    }

    /// Connects and takes the runner's lock: the same ID again after a short loss, else a new one.
    private func hold() throws -> PostgresConnection {
        let connection = try PostgresConnection.connect(conninfo, applicationName: applicationName, overriding: Self.clientSettings)
        do {
            try connection.execute(Self.serverSettings)
            let space = PostgresValue.int(Schema.LockSpace.runner.rawValue)
            if let runner = state.withLock({ $0.runner }) {
                let again = try connection.execute("SELECT pg_try_advisory_lock($1, $2)", [space, .int(runner)])
                guard again.bool(0, 0) == true else {
                    connection.close()
                    giveUp()  // a recovery pass is taking its jobs right now
                    throw PostgresError(message: "runner \(runner)'s lock is held by a recovery", sqlState: nil, kind: .connection)
                }
                try connection.execute("UPDATE herald.runners SET seen_free_at = NULL WHERE id = $1", [.int(runner)])
                state.withLock { $0.held = true }
                return connection
            }
            while true {
                let id = try connection.execute("SELECT nextval('herald.runner_ids')::integer")
                guard let runner = id.int(0, 0) else { continue }
                // An ID the sequence came back to after wrapping may still be held: take another.
                guard try connection.execute("SELECT pg_try_advisory_lock($1, $2)", [space, .int(runner)]).bool(0, 0) == true else { continue }
                try connection.execute("""
                    INSERT INTO herald.runners (id, host, pid) VALUES ($1, $2, $3)
                    ON CONFLICT (id) DO UPDATE SET host = $2, pid = $3, started = now(), seen_free_at = NULL
                    """, [.int(runner), .text(Self.hostName), .int(getpid())])
                state.withLock {
                    $0.runner = Int32(runner)
                    $0.held = true
                }
                return connection
            }
        } catch {
            connection.close()
            throw error
        }
    }

    static let hostName: String = {
        var buffer = [UInt8](repeating: 0, count: 256)
        gethostname(&buffer, 255)
        return String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self)
    }()
}

private func runnerLog(_ message: String) {
    try? FileDescriptor(rawValue: 2).writeAll(Array("herald-runner: warning: \(message)\n".utf8))
}
