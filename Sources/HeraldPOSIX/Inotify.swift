import CHeraldSys
import Glibc

/// An inotify instance: one watch per directory, events read as (watch, mask, name).
public struct Inotify: Sendable {
    /// The inotify descriptor, pollable for readability.
    public let fd: FileDescriptor

    /// One change in a watched directory.
    public struct Event: Sendable {
        public let watch: Int32
        public let mask: UInt32
        public let name: String

        /// An event of `watch` (-1 for the queue overflow) with `mask`, about the file `name`.
        public init(watch: Int32, mask: UInt32, name: String) {
            self.watch = watch
            self.mask = mask
            self.name = name
        }
    }

    /// A new non-blocking, close-on-exec inotify instance.
    public init() throws(SystemError) {
        fd = FileDescriptor(rawValue: try retryingEINTR("inotify_init1") { inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC)) })
    }

    /// Watches `path` for `mask`; returns the watch descriptor.
    public func watch(_ path: String, mask: UInt32) throws(SystemError) -> Int32 {
        try retryingEINTR("inotify_add_watch", path: path) { inotify_add_watch(fd.rawValue, path, mask) }
    }

    /// The events queued now; empty when none (the descriptor is non-blocking).
    public func readEvents() throws(SystemError) -> [Event] {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        let n = buffer.withUnsafeMutableBytes { Glibc.read(fd.rawValue, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EAGAIN || errno == EINTR { return [] }
            throw SystemError("read(inotify)", errno: errno)
        }
        var events: [Event] = []
        var offset = 0
        let header = MemoryLayout<inotify_event>.size
        while offset + header <= n {
            let (wd, mask, len) = buffer.withUnsafeBytes { raw -> (Int32, UInt32, Int) in
                let e = raw.loadUnaligned(fromByteOffset: offset, as: inotify_event.self)
                return (e.wd, e.mask, Int(e.len))
            }
            let nameBytes = buffer[(offset + header)..<(offset + header + len)].prefix { $0 != 0 }
            events.append(Event(watch: wd, mask: mask, name: String(decoding: nameBytes, as: UTF8.self)))
            offset += header + len
        }
        return events
    }
}
