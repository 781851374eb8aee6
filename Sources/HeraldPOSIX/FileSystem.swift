import CHeraldSys
import Glibc

/// Path-level file operations, each wrapping one system call.
public enum FileSystem {
    /// Renames `from` to `to`, atomically replacing `to`.
    public static func rename(_ from: String, _ to: String) throws(SystemError) {
        try retryingEINTR("rename", path: to) { Glibc.rename(from, to) }
    }

    /// Gives `from` a second name `to`; false when `to` exists already (link(2) never replaces: a race-free create).
    public static func link(_ from: String, _ to: String) throws(SystemError) -> Bool {
        if Glibc.link(from, to) == 0 { return true }
        if errno == EEXIST { return false }
        throw SystemError("link", errno: errno, path: to)
    }

    /// Removes a file; returns false if it was already gone.
    @discardableResult
    public static func unlink(_ path: String) throws(SystemError) -> Bool {
        if Glibc.unlink(path) == 0 { return true }
        if errno == ENOENT { return false }
        throw SystemError("unlink", errno: errno, path: path)
    }

    /// Creates a directory unless it exists.
    public static func makeDirectory(_ path: String, mode: mode_t = 0o775) throws(SystemError) {
        if Glibc.mkdir(path, mode) == 0 || errno == EEXIST { return }
        throw SystemError("mkdir", errno: errno, path: path)
    }

    /// Whether something exists at `path`.
    public static func exists(_ path: String) -> Bool {
        herald_stat(path, nil, nil, nil) == 0
    }

    /// The modification time in milliseconds, or nil if `path` does not exist.
    public static func modificationTime(_ path: String) -> Int64? {
        var ms: Int64 = 0
        return herald_stat(path, nil, &ms, nil) == 0 ? ms : nil
    }

    /// The size of the file at `path`, or nil if it does not exist.
    public static func size(_ path: String) -> Int? {
        var size: Int64 = 0
        return herald_stat(path, &size, nil, nil) == 0 ? Int(size) : nil
    }

    /// The names in a directory, without `.` and `..`.
    public static func list(_ path: String) throws(SystemError) -> [String] {
        guard let dir = opendir(path) else { throw SystemError("opendir", errno: errno, path: path) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// The whole content of a file, or nil if it does not exist.
    public static func read(_ path: String) throws(SystemError) -> [UInt8]? {
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(path, O_RDONLY)
        } catch {
            if error.errno == ENOENT { return nil }
            throw error
        }
        return try fd.closeAfter { (fd) throws(SystemError) in try fd.readAll() }
    }

    /// Flushes a directory's entries (after a rename into it) to the disk.
    public static func syncDirectory(_ path: String) throws(SystemError) {
        let fd = try FileDescriptor.open(path, O_RDONLY | O_DIRECTORY)
        try fd.closeAfter { (fd) throws(SystemError) in try fd.fsync() }
    }
}
