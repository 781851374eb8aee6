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

extension DirectoryStore: RunnerStore {
    /// Runs `body` holding the queue lock, which serializes ingest, claim, cancel and recovery across runners.
    func withQueueLock<T>(_ body: () throws(StoreError) -> T) throws(StoreError) -> T {
        let fd = try unavailableOnFailure { () throws(SystemError) in try DirectoryStore.openLockFile(root + "/queue.lock") }
        return try fd.closeAfter { (fd) throws(StoreError) -> T in
            _ = try unavailableOnFailure { () throws(SystemError) in try fd.lockExclusive(wait: true) }
            return try body()
        }
    }

    /// Opens (creating) a lock file readable by its owner alone, also one an earlier version left group-readable.
    static func openLockFile(_ path: String) throws(SystemError) -> FileDescriptor {
        let fd = try FileDescriptor.open(path, O_RDWR | O_CREAT, mode: 0o600)
        do { try fd.setMode(0o600) } catch {
            fd.close()
            throw error
        }
        return fd
    }

    func marker(_ id: JobID) -> String { "\(queue)/\(id.text)" }

    func touch(_ path: String) throws(StoreError) {
        try unavailableOnFailure { () throws(SystemError) in try FileDescriptor.open(path, O_WRONLY | O_CREAT, mode: 0o664).close() }
    }

    func unlinkQuietly(_ path: String) { _ = try? FileSystem.unlink(path) }

    /// Makes the names created or removed in `dirs` durable (not every filesystem orders them with other writes).
    func syncDirectories(_ dirs: [String]) throws(StoreError) {
        try unavailableOnFailure { () throws(SystemError) in for dir in dirs { try FileSystem.syncDirectory(dir) } }
    }

    public func ingest(kinds: [String: KindConfig]?, refused: (String, String) -> Void) throws(StoreError) -> Int {
        // Every submission is read and checked before queue.lock is taken: a kind's param regex may
        // backtrack for long, and the lock stops every runner's claims and recovery meanwhile.
        // The web side may write new/ but never job state: a forged file must not become (or replace)
        // a job, nor carry params its kind would refuse. The file is read once and the runner writes
        // its own copy: renaming it would keep the web user as its owner, free to rewrite the queued
        // job, and could move a file swapped in after the checks.
        // Checked submissions are committed in batches of at most `ingestBatchBytes` (or one), never
        // all at once: a backlog in new/ held whole could exhaust the runner's memory at every start.
        let batchSize = max(1, DirectoryStore.ingestBatchBytes / maxSubmissionBytes)
        var ingested = 0
        var checked: [(id: JobID, intake: Intake)] = []
        for name in try names(new) {
            guard let id = DirectoryStore.id(fromFileName: name, suffix: ".json") else {
                refused(name, removeStray(name))
                continue
            }
            checked.append((id, try checkedSubmission(id, kinds: kinds)))
            if checked.count >= batchSize {
                ingested += try commit(checked, refused: refused)
                checked = []
            }
        }
        return ingested + (checked.isEmpty ? 0 : try commit(checked, refused: refused))
    }

    /// How many bytes of checked submissions ingest holds at most before committing them.
    static let ingestBatchBytes = 32 << 20

    /// Takes checked submissions in under queue.lock; returns how many were queued.
    private func commit(_ checked: [(id: JobID, intake: Intake)], refused: (String, String) -> Void) throws(StoreError) -> Int {
        try withQueueLock { () throws(StoreError) -> Int in
            var ingested: [JobID] = []
            // Submissions whose job is written (failed) or was already, with why, for those refused.
            var settled: [(id: JobID, refusal: String?)] = []
            for (id, intake) in checked {
                let name = "\(id.text).json"
                guard FileSystem.exists(submissionPath(id)) else { continue }  // another runner took it
                // A job of that id may have appeared since the check (another runner took it), or be
                // what a crashed ingest left: it stands, and the submission goes once jobs/ is durable.
                if FileSystem.exists(statusPath(id)) {
                    if case let .refuse(refusal) = intake { settled.append((id, refusal.reason)) } else { settled.append((id, nil)) }
                    continue
                }
                switch intake {
                case let .queue(job):
                    // Marker first: a crash between the steps leaves a marker whose job is still in new/,
                    // which the next ingest completes; never a queued job without a marker.
                    try touch(marker(id))
                    try write(job, durable: false)
                    ingested.append(id)
                case let .fail(job):
                    refused(name, "\(job.error?.message ?? ""): the job is kept, failed")
                    try write(job, durable: false)
                    settled.append((id, nil))
                case let .refuse(refusal):
                    refused(name, "\(refusal.reason): \(removeFromNew(name))")
                }
            }
            guard !ingested.isEmpty || !settled.isEmpty else { return 0 }
            // Markers and jobs are durable before any submission goes: whatever a power cut keeps of
            // new/ (another writer's fsync of new/ may make an unlink durable early), a job is never nowhere.
            try syncDirectories([queue, jobsDir])
            for id in ingested { unlinkQuietly(submissionPath(id)) }
            for (id, refusal) in settled {
                let name = "\(id.text).json", outcome = removeFromNew(name)
                if let refusal { refused(name, "\(refusal): \(outcome)") }
            }
            return ingested.count
        }
    }

    /// Removes an entry of new/ that is no submission (nothing else would: the `.path` unit would start
    /// runners again and again until systemd's start limit failed it); says what it was and what was done.
    func removeStray(_ name: String) -> String {
        "not a submission (those are named ID.json, with a job id): \(removeFromNew(name))"
    }

    /// Removes the entry `name` of new/ that ingest refused, a file or an empty directory; says what was done.
    func removeFromNew(_ name: String) -> String {
        let path = "\(new)/\(name)"
        do {
            do { try FileSystem.unlink(path) } catch where error.errno == EISDIR {
                try FileSystem.removeDirectory(path)
            }
            return "removed"
        } catch {
            return "it cannot be removed (remove it by hand): \(error)"
        }
    }

    /// What ingest makes of a submission.
    enum Intake {
        /// A fresh job, to queue.
        case queue(Job)
        /// A fresh job whose kind, as configured now, refuses its params: it may have been answered
        /// 201 under the config of then, so it is kept, failed with a reason, never dropped.
        case fail(Job)
        /// Not a fresh job (forged, malformed, not a plain file): removed.
        case refuse(SubmissionRefused)
    }

    /// Why a submission is not ingested.
    struct SubmissionRefused: Error {
        let reason: String
    }

    /// What the submission new/ID.json is: a fresh job to queue or to fail, or why it is refused.
    func checkedSubmission(_ id: JobID, kinds: [String: KindConfig]?) throws(StoreError) -> Intake {
        if FileSystem.exists(statusPath(id)) {
            return .refuse(SubmissionRefused(reason: "a job with this id exists already"))
        }
        let job: Job
        switch try readSubmission(id) {
        case let .success(bytes):
            guard let bytes else { return .refuse(SubmissionRefused(reason: "it vanished")) }
            do { job = try decode(bytes, submissionPath(id)) } catch {
                return .refuse(SubmissionRefused(reason: "it is not a job: \(error)"))
            }
        case let .failure(refusal): return .refuse(refusal)
        }
        guard job.id == id else { return .refuse(SubmissionRefused(reason: "its id is not its file name")) }
        guard job.state == .queued, job.seq == 1, job.attempt == 1, job.startedAt == nil, job.finishedAt == nil,
              job.exitCode == nil, job.error == nil, job.result == nil, job.progress == 0 else {
            return .refuse(SubmissionRefused(reason: "it is not a fresh queued job"))
        }
        // A kind this runner does not know is left to a runner that does.
        if let kinds, let kind = kinds[job.kind] {
            // Known, but maybe in a canonically equal spelling that would name other slot locks.
            guard kinds[exactly: job.kind] != nil else {
                return .refuse(SubmissionRefused(reason: "its kind is not spelled as configured"))
            }
            do { _ = try kind.validate(params: job.paramsJSON) } catch {
                let why = JobError(.spawnFailed, "not started: its params are refused: \(error) (checked against the configuration when a runner took it)")
                let now = Timestamp(milliseconds: max(Clock.wallMilliseconds(), job.updatedAt.milliseconds))
                guard let failed = job.applying(.refused(why), at: now, retries: 0) else { preconditionFailure("a queued job can be refused") }
                return .fail(failed)
            }
        }
        return .queue(job)
    }

    /// The bytes of new/ID.json (nil when it is gone), read as what the web user may have put there:
    /// a symlink is not followed (to /dev/zero it would exhaust memory), a FIFO or a leased file is not
    /// waited on (it would hang every runner), and only a regular file of at most `maxSubmissionBytes` is read.
    /// A failure of the system rather than of the file (EMFILE, EIO) is thrown: the submission stays for the next pass.
    func readSubmission(_ id: JobID) throws(StoreError) -> Result<[UInt8]?, SubmissionRefused> {
        let path = submissionPath(id)
        do {
            let fd = try FileDescriptor.open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
            return try fd.closeAfter { (fd) throws(SystemError) -> Result<[UInt8]?, SubmissionRefused> in
                guard try fd.isRegularFile() else {
                    return .failure(SubmissionRefused(reason: "it is not a regular file (a FIFO, device, socket or directory)"))
                }
                guard let bytes = try fd.readAll(limit: maxSubmissionBytes) else {
                    return .failure(SubmissionRefused(reason: "it is over \(maxSubmissionBytes) bytes, more than any request herald-fcgi accepts"))
                }
                return .success(bytes)
            }
        } catch {
            switch error.errno {
            case ENOENT: return .success(nil)
            case ELOOP: return .failure(SubmissionRefused(reason: "it is a symbolic link"))
            case EACCES, EPERM, ENXIO: return .failure(SubmissionRefused(reason: "it cannot be read: \(error)"))
            // A write lease its owner (the web user) took: thrown, it would fail every pass of every runner.
            case EWOULDBLOCK: return .failure(SubmissionRefused(reason: "another process holds a lease on it"))
            default: throw .unavailable(error.description)
            }
        }
    }

    /// What a pass over the queue finds of a job.
    enum PassJob {
        case job(Job)
        case missing
        /// Its status file does not decode (damaged disk, a hand edit, a newer runner's format). It
        /// must cost that one job, not stop every runner, and lose nothing: it is skipped, and its
        /// marker, cancel request and lock file stay for when an operator repairs it
        /// (`herald-runner status` names the problem).
        case corrupt
    }

    /// The job of `id` as a pass over the queue finds it.
    func jobForPass(_ id: JobID) throws(StoreError) -> PassJob {
        do { return try read(statusPath(id)).map(PassJob.job) ?? .missing } catch {
            if case .corrupt = error { return .corrupt }
            throw error
        }
    }

    public func recoverLostJobs(kinds: [String: KindConfig], now: Timestamp) throws(StoreError) -> [Job] {
        let locks = try names(running).compactMap { DirectoryStore.id(fromFileName: $0, suffix: ".lock") }
        guard !locks.isEmpty else { return [] }
        return try withQueueLock { () throws(StoreError) -> [Job] in
            var recovered: [Job] = []
            for id in locks {
                let path = "\(running)/\(id.text).lock"
                guard let fd = try? FileDescriptor.open(path, O_RDWR) else { continue }
                defer { fd.close() }
                guard (try? fd.lockExclusive(wait: false)) == true else { continue }  // its runner is alive
                guard (try? fd.isFile(at: path)) == true else { continue }  // released meanwhile: the job ended well
                DirectoryClaim.killRecordedGroup(fd)
                let found = try jobForPass(id)
                if case .corrupt = found {
                    try? fd.truncate()  // its group is dead: never signal that number again
                    continue
                }
                if case let .job(job) = found {
                    switch job.state {
                    case .running:
                        let retries = kinds[job.kind]?.retries ?? 0
                        let lost = JobError(.runnerLost, "the runner running attempt \(job.attempt) stopped unexpectedly")
                        if let next = job.applying(.aborted(lost), at: now, retries: retries) {
                            try write(next, durable: true)
                            if next.state == .queued { try touch(marker(id)) }
                            recovered.append(next)
                        }
                    case .queued:
                        try touch(marker(id))  // a requeue that died before its marker
                    default: break
                    }
                }
                unlinkQuietly(path)
            }
            try syncDirectories([queue])
            return recovered
        }
    }

    public func cancelRequestedQueuedJobs(now: Timestamp) throws(StoreError) -> [Job] {
        let requested = try names(cancel).compactMap { JobID($0) }
        guard !requested.isEmpty else { return [] }
        return try withQueueLock { () throws(StoreError) -> [Job] in
            var canceled: [Job] = []
            for id in requested {
                let job: Job
                switch try jobForPass(id) {
                case let .job(found): job = found
                case .corrupt: continue
                case .missing:
                    if !FileSystem.exists(submissionPath(id)) { clearCancelRequest(id) }  // no such job
                    continue
                }
                switch job.state {
                case .queued:
                    guard let next = job.applying(.cancel, at: now, retries: 0) else { continue }
                    try write(next, durable: true)
                    unlinkQuietly(marker(id))
                    clearCancelRequest(id)
                    canceled.append(next)
                case .running: continue  // its runner cancels it
                default: clearCancelRequest(id)
                }
            }
            return canceled
        }
    }

    public func claimNext(kinds: [String: KindConfig], now: Timestamp) throws(StoreError) -> (any JobClaim)? {
        let queued = try names(queue).compactMap { JobID($0) }.sorted()
        guard !queued.isEmpty else { return nil }
        return try withQueueLock { () throws(StoreError) -> (any JobClaim)? in
            var fullKinds = Set<String>()
            for id in queued {
                let job: Job
                switch try jobForPass(id) {
                case let .job(found): job = found
                case .corrupt: continue
                case .missing:
                    if !FileSystem.exists(submissionPath(id)) { unlinkQuietly(marker(id)) }
                    continue
                }
                guard job.state == .queued else {
                    // A running job's marker may be its retry's, written by a runner that holds no
                    // queue lock: only an ended job's marker is surely stale.
                    if job.state.isTerminal { unlinkQuietly(marker(id)) }
                    continue
                }
                if fullKinds.contains(job.kind) { continue }
                guard let kind = kinds[exactly: job.kind] else { continue }  // a kind this runner's config lacks: leave it
                // Every way out of this turn but the claim (a full kind, a lock held elsewhere, a lock file
                // that cannot be created, a failed write) closes what it took: a slot left locked would be
                // lost to every runner for as long as this process lives.
                var slot: FileDescriptor?
                var lock: FileDescriptor?
                var claimed = false
                defer { if !claimed { lock?.close(); slot?.close() } }
                if let limit = kind.concurrency {
                    slot = try freeSlot(kind: job.kind, limit: limit)
                    if slot == nil { fullKinds.insert(job.kind); continue }
                }
                let lockPath = "\(running)/\(id.text).lock"
                lock = try lockNow(lockPath)
                guard let lock, let started = job.applying(.start, at: now, retries: kind.retries) else { continue }
                // The lock file is durable before the running state: recovery finds a job by it. Should
                // either fail, the rename may have happened: the lock file stays, so recovery finds the job
                // whichever state it is in (running: lost; queued: marker restored).
                try syncDirectories([running])
                try write(started, durable: true)
                unlinkQuietly(marker(id))
                claimed = true
                return DirectoryClaim(job: started, lockPath: lockPath, lock: lock, slot: slot)
            }
            return nil
        }
    }

    func freeSlot(kind: String, limit: Int) throws(StoreError) -> FileDescriptor? {
        for n in 0..<limit {
            if let fd = try lockNow("\(slots)/\(kind).\(n).lock") { return fd }
        }
        return nil
    }

    /// Opens (creating) a lock file and takes its flock without waiting; nil when another process holds it.
    func lockNow(_ path: String) throws(StoreError) -> FileDescriptor? {
        try unavailableOnFailure { () throws(SystemError) -> FileDescriptor? in
            while true {
                let fd = try DirectoryStore.openLockFile(path)
                do throws(SystemError) {
                    guard try fd.lockExclusive(wait: false) else {
                        fd.close()
                        return nil
                    }
                    // Its holder may have unlinked it between our open and our lock (a release): a lock
                    // on that file guards nothing, so open the path again.
                    if try fd.isFile(at: path) { return fd }
                    fd.close()
                } catch {
                    fd.close()
                    throw error
                }
            }
        }
    }

    public func write(_ job: Job, durable: Bool) throws(StoreError) {
        try replaceAtomically(statusPath(job.id), with: DirectoryStore.encode(job), tempDir: runnerTmp, syncDirectory: durable ? jobsDir : nil)
    }

    public func enqueue(_ id: JobID) throws(StoreError) {
        try touch(marker(id))
        try syncDirectories([queue])
    }

    public func isCancelRequested(_ id: JobID) -> Bool { FileSystem.exists(cancelPath(id)) }

    public func clearCancelRequest(_ id: JobID) { unlinkQuietly(cancelPath(id)) }

    public func logPath(for id: JobID) -> String { logPath(id) }

    public func finishedJobs(before cutoff: Timestamp) throws(StoreError) -> [Job] {
        try names(jobsDir).compactMap { DirectoryStore.id(fromFileName: $0, suffix: ".json") }.compactMap { id -> Job? in
            guard let job = try? read(statusPath(id)), job.state.isTerminal, let end = job.finishedAt, end < cutoff else { return nil }
            return job
        }
    }

    public func remove(_ id: JobID) throws(StoreError) {
        // The status file goes last: a job is listed until everything else of it is gone.
        for path in [logPath(id), cancelPath(id), marker(id)] { unlinkQuietly(path) }
        try unavailableOnFailure { () throws(SystemError) in _ = try FileSystem.unlink(statusPath(id)) }
    }
}
