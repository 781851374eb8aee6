import Glibc
import HeraldPOSIX

/// Appends a job's output to its log, cut at a cap with a marker written once; past the cap
/// output is still read (so the program never blocks on a full pipe) but thrown away.
final class LogSink {
    private let fd: FileDescriptor?
    private let cap: Int
    private var size: Int
    private var cut = false

    /// Opens the log for appending; a log that cannot be opened is reported and the job runs without one.
    init(path: String, cap: Int) {
        do {
            let fd = try FileDescriptor.open(path, O_WRONLY | O_CREAT | O_APPEND, mode: 0o664)
            size = try fd.size()
            self.fd = fd
        } catch {
            runnerLog(.warning, "no log for \(path): \(error)")
            fd = nil
            size = 0
        }
        self.cap = cap
        cut = size >= cap  // a retry appends to the same log, so the cap holds across attempts
    }

    /// Appends what fits under the cap; the first overflow writes the marker.
    func append(_ bytes: [UInt8]) {
        guard let fd, !cut, !bytes.isEmpty else { return }
        let room = cap - size
        let kept = bytes.count <= room ? bytes : Array(bytes.prefix(room)) + LogSink.marker(cap: cap)
        cut = bytes.count > room
        do {
            try fd.writeAll(kept)
            size += kept.count
        } catch {
            runnerLog(.warning, "log write failed: \(error)")
            cut = true  // a full disk: stop trying, the job goes on
        }
    }

    /// Appends a line written by the runner itself (the demo's steps).
    func line(_ text: String) { append(Array((text + "\n").utf8)) }

    func close() { fd?.close() }

    /// The marker line, naming the cap in MiB when it is a whole number of them.
    static func marker(cap: Int) -> [UInt8] {
        let size = cap % (1 << 20) == 0 ? "\(cap >> 20) MiB" : "\(cap) bytes"
        return Array("\n[herald: log truncated at \(size)]\n".utf8)
    }
}
