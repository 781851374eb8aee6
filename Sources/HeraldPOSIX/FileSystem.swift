import CHeraldSys
import Glibc

/// Path-level file operations, each wrapping one system call.
public enum FileSystem {
    /// Renames `from` to `to`, atomically replacing `to`.
    public static func rename(_ from: String, _ to: String) throws(SystemError) {
        try retryingEINTR("rename", path: to) { Glibc.rename(from, to) }
    }

    /// Swaps the files at `a` and `b` atomically (renameat2 RENAME_EXCHANGE): each name shows the other's
    /// file, and neither is ever missing.
    public static func exchange(_ a: String, _ b: String) throws(SystemError) {
        try retryingEINTR("renameat2(RENAME_EXCHANGE)", path: b) { herald_rename_exchange(a, b) }
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

    /// Removes an empty directory.
    public static func removeDirectory(_ path: String) throws(SystemError) {
        try retryingEINTR("rmdir", path: path) { Glibc.rmdir(path) }
    }

    /// Creates a directory unless it exists.
    public static func makeDirectory(_ path: String, mode: mode_t = 0o775) throws(SystemError) {
        if Glibc.mkdir(path, mode) == 0 || errno == EEXIST { return }
        throw SystemError("mkdir", errno: errno, path: path)
    }

    /// Creates a directory only its owner may enter, or makes an existing one so; fails unless this
    /// process owns it (so one created by another user is refused, not trusted).
    public static func makePrivateDirectory(_ path: String) throws(SystemError) {
        try makeDirectory(path, mode: 0o700)
        let fd = try FileDescriptor.open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
        try fd.closeAfter { (fd) throws(SystemError) in try fd.setMode(0o700) }
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

    /// The magic number of the filesystem `path` is on (statfs(2) `f_type`, as <linux/magic.h> spells it).
    public static func filesystemType(_ path: String) throws(SystemError) -> UInt32 {
        var type: Int64 = 0
        try retryingEINTR("statfs", path: path) { herald_statfs_type(path, &type) }
        // f_type is a signed word: on 32-bit systems the magic numbers above 0x7FFFFFFF come back negative.
        return UInt32(truncatingIfNeeded: type)
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
