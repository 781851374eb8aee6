import CFastCGI
import Foundation
import Glibc
import HeraldPOSIX

/// Where the FastCGI listening socket comes from (SPEC §5, in this order of preference).
public enum ListenSource: Sendable, Equatable {
    /// A listening socket on fd 0 (spawn-fcgi, systemd `StandardInput=socket`).
    case standardInput
    /// Systemd socket activation: fd 3 with `LISTEN_FDS=1` for this process.
    case systemdActivation
    /// A unix socket this process creates at the path, mode 0660.
    case path(String)

    /// Picks the inherited socket when there is one, else the path.
    public static func detect(socketPath: String) -> ListenSource {
        if ListeningSocket.isListening(0) { return .standardInput }
        if let fds = getenv("LISTEN_FDS").map({ String(cString: $0) }), fds == "1",
           let pid = getenv("LISTEN_PID").map({ String(cString: $0) }), pid == String(getpid()),
           ListeningSocket.isListening(3) {
            return .systemdActivation
        }
        return .path(socketPath)
    }
}

/// The libfcgi side of herald-fcgi: initialisation, the listening socket, and accepting requests.
///
/// One acceptor thread accepts connections and waits in epoll until each has its first bytes;
/// only then does an accepting thread hand it to libfcgi (`FCGX_Accept_r` on a connection that
/// is already open), so a slow web server never holds one of the few accepting threads, and
/// they never wait in accept(2) — shutting the listening socket down to wake them would refuse
/// connections for the next process under socket activation, which shares the socket.
public final class FastCGIServer: @unchecked Sendable {
    // Set once in init; the ready queue is guarded by `readyLock`.
    public let listenFD: FileDescriptor
    private let wake: EventFD
    private let epoll: Epoll
    private let readyLock = NSCondition()
    private var ready: [Int32] = []
    private var stopped = false

    /// How long a blocking read or write of a request may make no progress before it is given up.
    public static let blockingIOBoundMilliseconds = 10_000

    private static let listenToken: UInt64 = 0
    private static let wakeToken: UInt64 = 1
    private static let connectionBase: UInt64 = 2

    /// Calls `FCGX_Init` (once, before any thread) and opens or adopts the listening socket.
    public init(source: ListenSource) throws(SystemError) {
        guard FCGX_Init() == 0 else { throw SystemError("FCGX_Init", errno: errno) }
        switch source {
        case .standardInput: listenFD = FileDescriptor(rawValue: 0)
        case .systemdActivation: listenFD = FileDescriptor(rawValue: 3)
        // A burst of new streams must not find the queue full: nginx answers that with 502 at once.
        // (The kernel caps it at net.core.somaxconn.)
        case let .path(path): listenFD = try ListeningSocket.listen(path: path, mode: 0o660, backlog: 4096)
        }
        try listenFD.setNonBlocking()
        wake = try EventFD()
        epoll = try Epoll()
        try epoll.add(listenFD, events: Epoll.readable, token: FastCGIServer.listenToken)
        try epoll.add(wake.fd, events: Epoll.readable, token: FastCGIServer.wakeToken)
    }

    /// Starts the acceptor thread.
    public func start(log: @escaping @Sendable (String) -> Void) {
        let thread = Thread { [self] in acceptConnections(log: log) }
        thread.name = "herald-acceptor"
        thread.start()
    }

    private func acceptConnections(log: @Sendable (String) -> Void) {
        var waiting = Set<Int32>()  // accepted, first bytes not here yet
        while true {
            for (token, events) in epoll.wait(timeoutMilliseconds: -1) {
                switch token {
                case FastCGIServer.wakeToken:
                    // Stopping: connections already accepted are still served; new ones wait in the
                    // backlog for the next process.
                    enqueue(Array(waiting), stop: true)
                    return
                case FastCGIServer.listenToken:
                    do {
                        while let connection = try ListeningSocket.acceptPending(listenFD) {
                            do {
                                try epoll.add(connection, events: Epoll.readable | Epoll.peerHangUp | Epoll.oneShot,
                                              token: FastCGIServer.connectionBase + UInt64(connection.rawValue))
                            } catch {
                                connection.close()  // not watched, never served: do not leak it
                                throw error
                            }
                            waiting.insert(connection.rawValue)
                        }
                    } catch {
                        log("accepting a connection: \(error)")
                        Clock.sleep(milliseconds: 10)  // EMFILE and friends: do not spin
                    }
                default:
                    let fd = Int32(token - FastCGIServer.connectionBase)
                    waiting.remove(fd)
                    epoll.remove(FileDescriptor(rawValue: fd))
                    if events & Epoll.readable != 0 { enqueue([fd]) } else { FileDescriptor(rawValue: fd).close() }
                }
            }
        }
    }

    private func enqueue(_ fds: [Int32], stop: Bool = false) {
        readyLock.lock()
        ready.append(contentsOf: fds)
        if stop { stopped = true }
        readyLock.broadcast()
        readyLock.unlock()
    }

    /// The next request whose connection has data; nil once stopped and every accepted connection is served.
    public func accept() -> FastCGIRequest? {
        while true {
            readyLock.lock()
            while ready.isEmpty && !stopped { readyLock.wait() }
            guard !ready.isEmpty else {
                readyLock.unlock()
                return nil
            }
            let fd = ready.removeFirst()
            readyLock.unlock()

            // libfcgi reads and writes blocking: a peer that stops reading or sending must free this
            // thread within the bound, not hold it (nginx buffers plain answers, so it never does).
            // A parked stream is made non-blocking by the hub, where this no longer applies.
            try? FileDescriptor(rawValue: fd).setBlockingTimeout(milliseconds: FastCGIServer.blockingIOBoundMilliseconds)
            let raw = UnsafeMutablePointer<FCGX_Request>.allocate(capacity: 1)
            // No listening socket: libfcgi must only read the connection given here, never accept.
            FCGX_InitRequest(raw, -1, 0)
            raw.pointee.ipcFd = fd
            raw.pointee.keepConnection = 1  // keeps FCGX_Accept_r's opening Finish from closing it
            if FCGX_Accept_r(raw) == 0 { return FastCGIRequest(raw) }
            // A connection that closed or spoke no FastCGI: libfcgi closed it already.
            FCGX_Free(raw, raw.pointee.ipcFd >= 0 ? 1 : 0)
            raw.deallocate()
        }
    }

    /// Stops accepting (the socket stays open for the next process); `accept()` returns nil once the accepted connections are served.
    public func stopAccepting() {
        FCGX_ShutdownPending()
        wake.signal()
    }
}
