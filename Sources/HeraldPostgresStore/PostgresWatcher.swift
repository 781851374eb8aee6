import Foundation
import Glibc
import HeraldCore
import HeraldPOSIX
import HeraldPostgres
import HeraldStore
import Synchronization

/// Watches the store through `LISTEN` on Herald's channels: a thread of its own holds the connection (connecting
/// and reconnecting block; the hub must never), and signals an eventfd, which is `fd`. After the
/// connection was lost and is back, it reports `.everything`: NOTIFYs sent meanwhile are gone.
public final class PostgresWatcher: StoreWatcher, Sendable {
    private let listener: Listener

    /// A watcher of the changes on `channels`; without `waitForListen`, returns at once instead of
    /// waiting up to 5 s for LISTEN to be in effect.
    init(conninfo: String, applicationName: String, channels: [String], waitForListen: Bool) throws(StoreError) {
        listener = try Listener(conninfo: conninfo, applicationName: applicationName, channels: channels,
                                listenWaitMilliseconds: waitForListen ? Listener.firstListenMilliseconds : 0)
    }

    /// The thread ends (and its connection closes) when the watcher goes.
    deinit { listener.stop() }

    public var fd: Int32? { listener.wake.fd.rawValue }
    public var pollIntervalMilliseconds: Int { 1000 }
    public func changes() throws(StoreError) -> [StoreChange] { listener.changes() }

    /// Changes may have been missed (this runner's liveness session was given up): readers re-read all they serve.
    func reportEverything() { listener.report([.everything]) }
}

/// The LISTEN connection's thread and what it gathered.
private final class Listener: @unchecked Sendable {
    private struct Pending {
        var changes = Set<StoreChange>()
        var stopped = false
        /// LISTEN is in effect: no NOTIFY from now on is missed.
        var listening = false
        /// `init` returned before LISTEN was in effect: what happened meanwhile is unknown.
        var startedBlind = false
    }

    /// How long `init` waits for LISTEN, so that a change made just after `watch()` returns is reported.
    static let firstListenMilliseconds: Int64 = 5000

    private let pending = Mutex(Pending())
    let wake: EventFD
    private let conninfo: String
    private let applicationName: String
    private let channels: [String]

    init(conninfo: String, applicationName: String, channels: [String], listenWaitMilliseconds: Int64) throws(StoreError) {
        self.conninfo = conninfo
        self.applicationName = applicationName
        self.channels = channels
        do { wake = try EventFD() } catch { throw .unavailable(error.description) }
        let thread = Thread { [self] in
            listen()
            wake.fd.close()
        }
        thread.name = "herald-listen"
        thread.start()
        let deadline = Clock.monotonicMilliseconds() + listenWaitMilliseconds
        while !pending.withLock({ $0.listening }) {
            if Clock.monotonicMilliseconds() >= deadline {
                // PostgreSQL is away: the watcher works from when it comes back, and says so then.
                pending.withLock { p in p.startedBlind = !p.listening }
                break
            }
            Clock.sleep(milliseconds: 5)
        }
    }

    func stop() { pending.withLock { $0.stopped = true } }

    func changes() -> [StoreChange] {
        wake.drain()
        return Array(pending.withLock { p -> Set<StoreChange> in
            defer { p.changes.removeAll() }
            return p.changes
        })
    }

    func report(_ changes: [StoreChange]) {
        guard !changes.isEmpty else { return }
        pending.withLock { $0.changes.formUnion(changes) }
        wake.signal()
    }

    private var isStopped: Bool { pending.withLock { $0.stopped } }

    private func listen() {
        var everConnected = false
        while !isStopped {
            let connection: PostgresConnection
            do {
                connection = try PostgresConnection.connect(conninfo, applicationName: applicationName)
                for channel in channels { try connection.execute("LISTEN \(channel)") }
            } catch {
                Clock.sleep(milliseconds: 500)
                continue
            }
            let blind = pending.withLock { p -> Bool in
                defer { p.listening = true }
                return p.startedBlind
            }
            if everConnected || blind { report([.everything]) }
            everConnected = true
            relay(connection)
            pending.withLock { $0.listening = false }
            connection.close()
        }
    }

    /// Reports the notifications arriving on `connection` until it breaks or the watcher stops.
    private func relay(_ connection: PostgresConnection) {
        while !isStopped {
            var poll = pollfd(fd: connection.socket, events: Int16(POLLIN), revents: 0)
            let ready = Glibc.poll(&poll, 1, 1000)
            if ready < 0, errno == EINTR { continue }
            if ready == 0 {
                // A quiet connection may have died without a word (a restart behind a proxy): ask.
                do { try connection.execute("SELECT 1") } catch { return }
            } else {
                do { try connection.consumeInput() } catch { return }
            }
            report(connection.notifications().flatMap(Listener.changes(from:)))
        }
    }

    static func changes(from notification: PostgresNotification) -> [StoreChange] {
        guard let (notice, ids) = ChangeNotice.parse(notification.payload), notice.channel == notification.channel else { return [] }
        switch notice {
        case .job: return ids.map(StoreChange.job)
        case .log: return ids.map(StoreChange.log)
        case .cancelRequested: return ids.map(StoreChange.cancelRequested)
        case .submitted: return ids.map(StoreChange.submitted)
        }
    }
}
