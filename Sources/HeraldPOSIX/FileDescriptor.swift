import CHeraldSys
import Glibc

/// An open file descriptor; every read, write and lock on one goes through here.
public struct FileDescriptor: Hashable, Sendable {
    /// The kernel's descriptor number.
    public let rawValue: Int32

    /// Wraps a descriptor number this code owns.
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// Opens `path` close-on-exec.
    public static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o644) throws(SystemError) -> FileDescriptor {
        FileDescriptor(rawValue: try retryingEINTR("open", path: path) { Glibc.open(path, flags | O_CLOEXEC, mode) })
    }

    /// Closes the descriptor; errors are ignored because the descriptor is gone either way (Linux close semantics).
    public func close() { _ = Glibc.close(rawValue) }

    /// Runs `body` and closes the descriptor afterwards, whatever happens.
    public func closeAfter<T, E: Error>(_ body: (FileDescriptor) throws(E) -> T) throws(E) -> T {
        defer { close() }
        return try body(self)
    }

    /// Reads up to `count` bytes; an empty array means end of file.
    public func read(upTo count: Int) throws(SystemError) -> [UInt8] {
        // Uninitialized: zeroing a 64 KiB buffer per read cost more than the read (perf, issue 11).
        var result = 0
        var error: Int32 = 0
        let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            repeat {
                result = Glibc.read(rawValue, buffer.baseAddress, count)
                error = result < 0 ? Glibc.errno : 0
            } while error == EINTR
            initialized = max(0, result)
        }
        if result < 0 { throw SystemError("read", errno: error) }
        return bytes
    }

    /// Reads up to `count` bytes at `offset` without moving the file position.
    public func read(at offset: Int, upTo count: Int) throws(SystemError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        let n = try retryingEINTR("pread") {
            buffer.withUnsafeMutableBytes { Glibc.pread(rawValue, $0.baseAddress, count, off_t(offset)) }
        }
        buffer.removeSubrange(n...)
        return buffer
    }

    /// Reads to end of file (for small files: status files, configs, tokens).
    public func readAll() throws(SystemError) -> [UInt8] {
        var out: [UInt8] = []
        while true {
            let chunk = try read(upTo: 65536)
            if chunk.isEmpty { return out }
            out.append(contentsOf: chunk)
        }
    }

    /// Reads to end of file, or returns nil as soon as the file holds more than `limit` bytes.
    public func readAll(limit: Int) throws(SystemError) -> [UInt8]? {
        var out: [UInt8] = []
        while out.count <= limit {
            let chunk = try read(upTo: min(65536, limit + 1 - out.count))
            if chunk.isEmpty { return out }
            out.append(contentsOf: chunk)
        }
        return nil
    }

    /// Whether the descriptor is a regular file (not a FIFO, device, directory or socket).
    public func isRegularFile() throws(SystemError) -> Bool {
        var status = Glibc.stat()
        try retryingEINTR("fstat") { Glibc.fstat(rawValue, &status) }
        return status.st_mode & S_IFMT == S_IFREG
    }

    /// Writes what a non-blocking descriptor takes of `bytes` now: 0 when it is full (EAGAIN).
    public func writeAvailable(_ bytes: UnsafeRawBufferPointer) throws(SystemError) -> Int {
        do {
            return try retryingEINTR("write") { Glibc.write(rawValue, bytes.baseAddress, bytes.count) }
        } catch where error.errno == EAGAIN {
            return 0
        }
    }

    /// Writes all of `bytes`, looping over short writes.
    public func writeAll(_ bytes: some Collection<UInt8>) throws(SystemError) {
        let array = Array(bytes)
        var done = 0
        while done < array.count {
            done += try retryingEINTR("write") {
                array.withUnsafeBytes { Glibc.write(rawValue, $0.baseAddress! + done, $0.count - done) }
            }
        }
    }

    /// Writes all of `bytes` at `offset` (pwrite), leaving the file position where it was.
    public func writeAll(_ bytes: [UInt8], at offset: Int) throws(SystemError) {
        var done = 0
        while done < bytes.count {
            done += try retryingEINTR("pwrite") {
                bytes.withUnsafeBytes { Glibc.pwrite(rawValue, $0.baseAddress! + done, $0.count - done, off_t(offset + done)) }
            }
        }
    }

    /// Flushes the file's data and metadata to the disk.
    public func fsync() throws(SystemError) { try retryingEINTR("fsync") { Glibc.fsync(rawValue) } }

    /// Takes an exclusive `flock`; with `wait: false` returns false instead of blocking when another holds it.
    public func lockExclusive(wait: Bool) throws(SystemError) -> Bool {
        while true {
            if herald_flock(rawValue, LOCK_EX | (wait ? 0 : LOCK_NB)) == 0 { return true }
            let e = Glibc.errno
            if e == EINTR { continue }
            if e == EWOULDBLOCK { return false }
            throw SystemError("flock", errno: e)
        }
    }

    /// The file's size in bytes.
    public func size() throws(SystemError) -> Int {
        var size: Int64 = 0
        try retryingEINTR("fstat") { herald_fstat(rawValue, &size) }
        return Int(size)
    }

    /// Whether this descriptor's file is still the one at `path` (not unlinked or replaced since it was opened).
    public func isFile(at path: String) throws(SystemError) -> Bool {
        try retryingEINTR("fstat") { herald_is_file_at(rawValue, path) } == 1
    }

    /// Moves the file position to the end (for appending logs opened without O_APPEND).
    public func seekToEnd() throws(SystemError) -> Int {
        Int(try retryingEINTR("lseek") { Glibc.lseek(rawValue, 0, SEEK_END) })
    }

    /// Makes the descriptor non-blocking.
    public func setNonBlocking() throws(SystemError) {
        let flags = try retryingEINTR("fcntl") { Glibc.fcntl(rawValue, F_GETFL) }
        try retryingEINTR("fcntl") { Glibc.fcntl(rawValue, F_SETFL, flags | O_NONBLOCK) }
    }

    /// Shuts the socket down in both directions, so a peer and a lingering close both end at once.
    public func shutdown() { _ = Glibc.shutdown(rawValue, Int32(SHUT_RDWR)) }

    /// Sets the file's permission bits (fchmod); fails unless this process owns the file.
    public func setMode(_ mode: mode_t) throws(SystemError) { try retryingEINTR("fchmod") { Glibc.fchmod(rawValue, mode) } }

    /// Cuts the file to `length` bytes (nothing, by default).
    public func truncate(to length: Int = 0) throws(SystemError) {
        try retryingEINTR("ftruncate") { Glibc.ftruncate(rawValue, off_t(length)) }
    }

    /// Moves the file position to `offset` from the start.
    public func seek(to offset: Int) throws(SystemError) {
        try retryingEINTR("lseek") { Glibc.lseek(rawValue, off_t(offset), SEEK_SET) }
    }

    /// A close-on-exec anonymous file in memory, gone when its last descriptor closes.
    public static func memoryFile(name: String) throws(SystemError) -> FileDescriptor {
        FileDescriptor(rawValue: try retryingEINTR("memfd_create") { herald_memfd_create(name) })
    }

    /// A close-on-exec pipe: (read end, write end).
    public static func pipe() throws(SystemError) -> (read: FileDescriptor, write: FileDescriptor) {
        var fds: [Int32] = [0, 0]
        try retryingEINTR("pipe2") { herald_pipe2_cloexec(&fds) }
        return (FileDescriptor(rawValue: fds[0]), FileDescriptor(rawValue: fds[1]))
    }
}
