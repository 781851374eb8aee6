import CFastCGI
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
/// Accepting threads wait in poll(2) on the listening socket and a wake-up eventfd, never in
/// accept(2): shutting the listening socket down to wake them would also refuse connections
/// for the next process under socket activation, which shares that socket.
public final class FastCGIServer: @unchecked Sendable {
    // Set once in init; the wake eventfd is written from the shutdown path only.
    public let listenFD: FileDescriptor
    private let wake: EventFD

    /// Calls `FCGX_Init` (once, before any thread) and opens or adopts the listening socket.
    public init(source: ListenSource) throws(SystemError) {
        guard FCGX_Init() == 0 else { throw SystemError("FCGX_Init", errno: errno) }
        switch source {
        case .standardInput: listenFD = FileDescriptor(rawValue: 0)
        case .systemdActivation: listenFD = FileDescriptor(rawValue: 3)
        case let .path(path): listenFD = try ListeningSocket.listen(path: path, mode: 0o660, backlog: 1024)
        }
        // Non-blocking so that a thread that lost the race for a connection gets EAGAIN, not a hang.
        try listenFD.setNonBlocking()
        wake = try EventFD()
    }

    /// Waits for the next request; nil once `stopAccepting()` was called.
    public func accept() -> FastCGIRequest? {
        while true {
            let ready = Poll.readable([listenFD.rawValue, wake.fd.rawValue], timeoutMilliseconds: -1)
            if ready.contains(1) { return nil }
            guard ready.contains(0) else { continue }
            let raw = UnsafeMutablePointer<FCGX_Request>.allocate(capacity: 1)
            FCGX_InitRequest(raw, listenFD.rawValue, 0)
            let rc = FCGX_Accept_r(raw)
            if rc == 0 { return FastCGIRequest(raw) }
            FCGX_Free(raw, 1)
            raw.deallocate()
            // -EAGAIN: another thread took the connection. Anything else was that connection's problem.
        }
    }

    /// Wakes every accepting thread and makes `accept()` return nil from now on; the socket stays open.
    public func stopAccepting() {
        FCGX_ShutdownPending()
        wake.signal()  // never drained: every poller sees it
    }
}
