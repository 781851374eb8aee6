import Glibc
import HeraldCore
import HeraldPOSIX

/// A claim in the state directory: the job's liveness lock and, for a limited kind, a slot lock.
final class DirectoryClaim: JobClaim, @unchecked Sendable {
    let job: Job
    private let lockPath: String
    private let lock: FileDescriptor
    private let slot: FileDescriptor?
    private var released = false  // only the claiming thread calls release

    init(job: Job, lockPath: String, lock: FileDescriptor, slot: FileDescriptor?) {
        self.job = job
        self.lockPath = lockPath
        self.lock = lock
        self.slot = slot
    }

    func release() {
        guard !released else { return }
        released = true
        // Unlink while still holding the lock: recovery never takes a lock on a file that
        // is about to disappear for a job that ended well.
        _ = try? FileSystem.unlink(lockPath)
        lock.close()
        slot?.close()
    }

    func recordProcessGroup(_ group: Int32) {
        // The boot id keeps a recovering runner from killing a group of the same number after a reboot.
        _ = try? lock.writeAll(Array("\(group) \(DirectoryClaim.bootID)\n".utf8))
    }

    static let bootID: String = {
        let bytes = (try? FileSystem.read("/proc/sys/kernel/random/boot_id")) ?? nil
        return String(decoding: bytes ?? [], as: UTF8.self).filter { !$0.isWhitespace }
    }()

    /// Kills the process group a dead runner recorded in `lock`, if it was recorded during this boot:
    /// the job's programs must not run on beside its retry.
    static func killRecordedGroup(_ lock: FileDescriptor) {
        guard let bytes = try? lock.readAll() else { return }
        let fields = String(decoding: bytes, as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard fields.count == 2, let group = Int32(fields[0]), group > 1, !bootID.isEmpty, fields[1] == bootID else { return }
        ChildProcess.signalGroup(group, SIGKILL)
    }

    func abandon() {
        guard !released else { return }
        released = true
        lock.close()
        slot?.close()
    }

    deinit { release() }
}
