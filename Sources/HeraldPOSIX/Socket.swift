import CHeraldSys
import Glibc

/// Listening sockets: found among inherited descriptors, or made on a unix path.
public enum ListeningSocket {
    /// Whether `fd` is a socket in the listening state (spawn-fcgi and systemd hand those over).
    public static func isListening(_ fd: Int32) -> Bool {
        var accepting: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &length) == 0 && accepting != 0
    }

    /// A unix stream socket listening at `path` with `mode` (a stale socket file is replaced).
    public static func listen(path: String, mode: mode_t, backlog: Int32) throws(SystemError) -> FileDescriptor {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw SystemError("bind", errno: ENAMETOOLONG, path: path)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
            raw[bytes.count] = 0
        }
        let fd = FileDescriptor(rawValue: try retryingEINTR("socket") { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) })
        do {
            _ = try FileSystem.unlink(path)
            try retryingEINTR("bind", path: path) {
                withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd.rawValue, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
                }
            }
            try retryingEINTR("chmod", path: path) { chmod(path, mode) }
            try retryingEINTR("listen", path: path) { Glibc.listen(fd.rawValue, backlog) }
        } catch {
            fd.close()
            throw error
        }
        return fd
    }
}

extension ListeningSocket {
    /// Accepts one pending connection, close-on-exec, or nil when none is waiting (the socket is non-blocking).
    public static func acceptPending(_ listener: FileDescriptor) throws(SystemError) -> FileDescriptor? {
        while true {
            let fd = herald_accept_cloexec(listener.rawValue)
            if fd >= 0 { return FileDescriptor(rawValue: fd) }
            switch errno {
            case EINTR, ECONNABORTED: continue
            case EAGAIN: return nil
            default: throw SystemError("accept4", errno: errno)
            }
        }
    }
}

/// poll(2) on a few descriptors.
public enum Poll {
    /// Waits until one of `fds` is readable (or hung up) and returns the indexes that are; -1 timeout waits forever.
    public static func readable(_ fds: [Int32], timeoutMilliseconds: Int32) -> [Int] {
        var entries = fds.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        let n = entries.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t($0.count), timeoutMilliseconds) }
        guard n > 0 else { return [] }
        return entries.indices.filter { entries[$0].revents != 0 }
    }
}

extension FileDescriptor {
    /// Bounds every blocking send and receive on this socket: one that makes no progress for
    /// `milliseconds` fails with EAGAIN instead of waiting for a peer that stopped reading or sending.
    public func setBlockingTimeout(milliseconds: Int) throws(SystemError) {
        var limit = timeval(tv_sec: milliseconds / 1000, tv_usec: (milliseconds % 1000) * 1000)
        for option in [SO_SNDTIMEO, SO_RCVTIMEO] {
            try retryingEINTR("setsockopt") { setsockopt(rawValue, SOL_SOCKET, option, &limit, socklen_t(MemoryLayout<timeval>.size)) }
        }
    }
}
