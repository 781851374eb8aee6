import HeraldPOSIX

/// Where the store's fsyncs of files and directories go: the system's, or in tests a recorder
/// around them, which shows which writes are made durable and which are not.
struct StoreSync: Sendable {
    /// Flushes the file written through the descriptor (at the path given) to the disk.
    let file: @Sendable (FileDescriptor, String) throws(SystemError) -> Void
    /// Flushes a directory's entries to the disk.
    let directory: @Sendable (String) throws(SystemError) -> Void

    static let system = StoreSync(
        file: { (fd, _) throws(SystemError) in try fd.fsync() },
        directory: { (dir) throws(SystemError) in try FileSystem.syncDirectory(dir) })
}
