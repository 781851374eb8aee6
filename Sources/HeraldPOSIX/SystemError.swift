import Glibc

/// A failed system call: its name, the errno, and the path it was about when there was one.
public struct SystemError: Error, Sendable, Equatable, CustomStringConvertible {
    public let call: String
    public let errno: Int32
    public let path: String?

    /// An error for `call` with `errno`, about `path`.
    public init(_ call: String, errno: Int32, path: String? = nil) {
        self.call = call
        self.errno = errno
        self.path = path
    }

    public var description: String {
        let what = path.map { "\(call)(\($0))" } ?? call
        return "\(what): \(String(cString: strerror(errno)))"
    }

    /// Whether the error means the disk is full or the directory cannot be written (SPEC: answered 503).
    public var isUnwritable: Bool {
        [ENOSPC, EDQUOT, EROFS, EACCES, EPERM, EIO, ENOENT].contains(errno)
    }
}

/// Runs a system call until it is not interrupted by a signal; throws its errno as a `SystemError`.
@discardableResult
public func retryingEINTR<T: BinaryInteger>(_ call: String, path: String? = nil, _ body: () -> T) throws(SystemError) -> T {
    while true {
        let r = body()
        if r >= 0 { return r }
        let e = Glibc.errno
        if e != EINTR { throw SystemError(call, errno: e, path: path) }
    }
}
