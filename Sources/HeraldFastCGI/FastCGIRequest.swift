import CFastCGI
import Glibc
import HeraldPOSIX

/// One accepted FastCGI request, in its own heap-allocated `FCGX_Request` that is never copied.
///
/// Used by one thread at a time. It ends either by `finish()` (answered through libfcgi) or by
/// `detach()` (a parked event stream, whose records the stream hub then writes itself).
public final class FastCGIRequest: @unchecked Sendable {
    private var raw: UnsafeMutablePointer<FCGX_Request>?
    /// Every FastCGI param, copied (libfcgi frees its strings at finish).
    public let params: [String: String]

    init(_ raw: UnsafeMutablePointer<FCGX_Request>) {
        self.raw = raw
        var params: [String: String] = [:]
        if var env = raw.pointee.envp {
            while let entry = env.pointee {
                let text = String(cString: entry)
                if let eq = text.firstIndex(of: "=") {
                    params[String(text[..<eq])] = String(text[text.index(after: eq)...])
                }
                env += 1
            }
        }
        self.params = params
    }

    deinit { if raw != nil { finish() } }

    /// Reads the request body, at most `limit` bytes (the caller checked CONTENT_LENGTH first).
    public func readBody(limit: Int) -> [UInt8] {
        guard let raw, limit > 0 else { return [] }
        var body = [UInt8](repeating: 0, count: limit)
        var filled = 0
        while filled < limit {
            let n = body.withUnsafeMutableBufferPointer { buffer in
                buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: limit) {
                    FCGX_GetStr($0 + filled, Int32(limit - filled), raw.pointee.in)
                }
            }
            if n <= 0 { break }
            filled += Int(n)
        }
        body.removeSubrange(filled...)
        return body
    }

    /// Writes and flushes a complete response (CGI-style head and body) through libfcgi; throws when
    /// the web server is gone or took none of it within the connection's blocking bound.
    public func respond(_ bytes: [UInt8]) throws(SystemError) {
        guard let raw else { return }
        let put = bytes.withUnsafeBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: bytes.count) {
                FCGX_PutStr($0, Int32(bytes.count), raw.pointee.out)
            }
        }
        if put != Int32(bytes.count) || FCGX_FFlush(raw.pointee.out) != 0 || FCGX_GetError(raw.pointee.out) != 0 {
            // libfcgi keeps the errno of the write that failed (EAGAIN: the bound passed without progress).
            throw SystemError("write", errno: FCGX_GetError(raw.pointee.out))
        }
    }

    /// Ends the request through libfcgi and frees it.
    public func finish() {
        guard let raw else { return }
        self.raw = nil
        if FCGX_GetError(raw.pointee.out) != 0 {
            // A dead connection: shut it down so the lingering close in Finish returns at once.
            shutdown(herald_fcgx_ipc_fd(raw), Int32(SHUT_RDWR))
        }
        FCGX_Finish_r(raw)
        raw.deallocate()
    }

    /// Hands the connection over for a parked stream: drains the (empty) body so the connection
    /// closes cleanly later, frees libfcgi's state without closing, and returns the fd and request id.
    public func detach() -> (fd: FileDescriptor, requestID: UInt16) {
        let raw = self.raw!
        self.raw = nil
        var sink = [CChar](repeating: 0, count: 4096)
        while FCGX_GetStr(&sink, Int32(sink.count), raw.pointee.in) > 0 {}
        let fd = FileDescriptor(rawValue: herald_fcgx_ipc_fd(raw))
        let requestID = UInt16(truncatingIfNeeded: herald_fcgx_request_id(raw))
        FCGX_Free(raw, 0)
        raw.deallocate()
        return (fd, requestID)
    }
}
