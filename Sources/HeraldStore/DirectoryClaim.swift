import Glibc
import HeraldCore
import HeraldPOSIX

/// A claim in the state directory: the job's liveness lock and, for a limited kind, a slot lock.
/// A claim is lost when its lock file is no longer the one it holds (removed or replaced by hand):
/// recovery cannot take a lock a live runner holds, so on one host nothing else takes a job over.
final class DirectoryClaim: JobClaim, @unchecked Sendable {
    // The attempt's thread alone calls everything but `isCancelRequested`, which touches no state.
    let job: Job
    private let store: DirectoryStore
    private let lockPath: String
    private let lock: FileDescriptor
    private let slot: FileDescriptor?
    /// The job's log, opened for appending at the first use.
    private var log: FileDescriptor?
    private var progress: ProgressFiles
    private var ended = false

    init(store: DirectoryStore, job: Job, lockPath: String, lock: FileDescriptor, slot: FileDescriptor?) {
        self.store = store
        self.job = job
        self.lockPath = lockPath
        self.lock = lock
        self.slot = slot
        progress = ProgressFiles(store: store, id: job.id)
    }

    func writeProgress(_ job: Job) throws(StoreError) {
        try checkHeld()
        try progress.write(job)
    }

    func appendLog(_ bytes: [UInt8]) throws(StoreError) {
        guard !ended else { throw .claimLost(job.id) }
        let log = try openedLog()
        try store.unavailableOnFailure { () throws(SystemError) in try log.writeAll(bytes) }
    }

    func logSize() throws(StoreError) -> Int {
        let log = try openedLog()
        return try store.unavailableOnFailure { () throws(SystemError) in try log.size() }
    }

    private func openedLog() throws(StoreError) -> FileDescriptor {
        if let log { return log }
        let opened = try store.unavailableOnFailure { () throws(SystemError) in
            try FileDescriptor.open(store.logPath(job.id), O_WRONLY | O_CREAT | O_APPEND, mode: 0o664)
        }
        log = opened
        return opened
    }

    func isCancelRequested() throws(StoreError) -> Bool { store.isCancelRequested(job.id) }

    func recordProcessGroup(_ group: Int32) {
        // The boot id keeps a recovering runner from killing a group of the same number after a reboot.
        _ = try? lock.writeAll(Array("\(group) \(DirectoryClaim.bootID)\n".utf8))
    }

    func finish(_ job: Job) throws(StoreError) {
        try checkHeld()
        // Durable before anything else moves: the release lets other runners act on the job.
        try store.writeTransition(job)
        if job.state == .queued {
            // A cancel request stays: the next pass cancels the queued job.
            try store.enqueue(job.id)
        } else {
            store.clearCancelRequest(job.id)
        }
        release()
    }

    /// Refuses writes once the claim ended or its lock file is no longer the one held.
    private func checkHeld() throws(StoreError) {
        guard !ended else { throw .claimLost(job.id) }
        let held = try store.unavailableOnFailure { () throws(SystemError) in try lock.isFile(at: lockPath) }
        guard held else { throw .claimLost(job.id) }
    }

    /// Ends the claim: the liveness lock and the concurrency slot are freed.
    private func release() {
        ended = true
        // Unlink while still holding the lock: recovery never takes a lock on a file that
        // is about to disappear for a job that ended well.
        _ = try? FileSystem.unlink(lockPath)
        closeAll()
    }

    func abandon() {
        guard !ended else { return }
        ended = true
        closeAll()
    }

    private func closeAll() {
        log?.close()
        log = nil
        progress.close()
        lock.close()
        slot?.close()
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

    // A claim dropped without an end is a crash: the job is left to recovery, never stuck running.
    deinit { abandon() }
}
