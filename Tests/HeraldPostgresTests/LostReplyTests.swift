import Foundation
import Glibc
import HeraldPOSIX
@testable import HeraldPostgresStore
import HeraldPostgresTesting
import Synchronization
import Testing

/// A write whose commit succeeded but whose reply was lost, as a dropped connection does it.
@Suite struct LostReplyTests {
    @Test func anAppendRetriedAfterItsReplyWasLostIsWrittenOnce() throws {
        let fixture = try PostgresFixture()
        let relay = try ReplyLosingRelay(upstreamDirectory: fixture.cluster.directory)
        defer { relay.stop() }
        let store = try PostgresStore(conninfo: relay.conninfo(fixture.conninfo), applicationName: "herald-test")
        let job = try fixture.submit(store)
        let claim = try #require(try store.claimNext(kinds: testKinds, now: fixture.now()))
        try claim.appendLog(Array("one\n".utf8))
        relay.loseNextReply(to: "two\n")  // the append's Bind (its statement was prepared by the first one)
        // Committed, then the connection drops: the pool runs the append once more on a new one.
        try claim.appendLog(Array("two\n".utf8))
        try claim.appendLog(Array("three\n".utf8))
        #expect(relay.repliesLost == 1)
        #expect(try fixture.store().log(job.id, from: 0, maxBytes: 100).bytes == Array("one\ntwo\nthree\n".utf8))
        #expect(try claim.logSize() == 14)
    }
}

/// A unix-socket relay in front of the private cluster that can lose one reply: it passes the next
/// message naming `marker` on to PostgreSQL, reads the whole answer (up to ReadyForQuery, so the
/// statement committed), and closes the client's connection instead of passing the answer on.
final class ReplyLosingRelay: @unchecked Sendable {
    let directory: String
    private let upstream: String
    private let upstreamDirectory: String
    private let listener: Int32
    private let armed = Mutex<String?>(nil)
    private let lost = Atomic<Int>(0)

    init(upstreamDirectory: String) throws {
        var template = Array("/tmp/herald-relay-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw SystemError("mkdtemp", errno: errno) }
        directory = String(cString: made)
        self.upstreamDirectory = upstreamDirectory
        upstream = upstreamDirectory + "/.s.PGSQL.5432"
        listener = try ListeningSocket.listen(path: directory + "/.s.PGSQL.5432", mode: 0o777, backlog: 16).rawValue
        let fd = listener
        Thread { [self] in
            while true {
                var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&ready, 1, -1) >= 0 || errno == EINTR, ready.revents & Int16(POLLNVAL) == 0 else { return }
                let client = accept(fd, nil, nil)
                if client < 0 { if errno == EINTR || errno == EAGAIN { continue } else { return } }
                _ = fcntl(client, F_SETFD, FD_CLOEXEC)  // a process another test spawns meanwhile must not hold it
                Thread { [self] in relay(client) }.start()
            }
        }.start()
    }

    /// `conninfo` of the cluster, through the relay.
    func conninfo(_ conninfo: String) -> String {
        conninfo.replacingOccurrences(of: "host=\(upstreamDirectory)", with: "host=\(directory)")
    }

    func loseNextReply(to marker: String) { armed.withLock { $0 = marker } }

    var repliesLost: Int { lost.load(ordering: .relaxed) }

    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        _ = try? FileManager.default.removeItem(atPath: directory)
    }

    private func relay(_ client: Int32) {
        let server = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        defer {
            close(client)
            close(server)
        }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { path in
            for (k, byte) in upstream.utf8.enumerated() { path[k] = byte }
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(server, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else { return }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var losing = false
        var answer: [UInt8] = []
        while true {
            var fds = [pollfd(fd: client, events: Int16(POLLIN), revents: 0), pollfd(fd: server, events: Int16(POLLIN), revents: 0)]
            guard poll(&fds, 2, -1) > 0 else { continue }
            if fds[0].revents != 0 {
                let n = read(client, &buffer, buffer.count)
                guard n > 0 else { return }
                let data = Array(buffer[..<n])
                let text = String(decoding: data, as: UTF8.self)
                if armed.withLock({ marker in
                    guard let m = marker, text.contains(m) else { return false }
                    marker = nil
                    return true
                }) { losing = true }
                guard writeAll(server, data) else { return }
            }
            if fds[1].revents != 0 {
                let n = read(server, &buffer, buffer.count)
                guard n > 0 else { return }
                let data = Array(buffer[..<n])
                guard losing else {
                    guard writeAll(client, data) else { return }
                    continue
                }
                answer += data
                // ReadyForQuery ('Z', length 5): the statement is done and committed; its answer goes nowhere.
                if answer.indices.dropLast(4).contains(where: { answer[$0] == 0x5A && answer[$0 + 1 ... $0 + 4].elementsEqual([0, 0, 0, 5]) }) {
                    lost.add(1, ordering: .relaxed)
                    return
                }
            }
        }
    }

    private func writeAll(_ fd: Int32, _ data: [UInt8]) -> Bool {
        var sent = 0
        while sent < data.count {
            let n = data[sent...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { return false }
            sent += n
        }
        return true
    }
}
