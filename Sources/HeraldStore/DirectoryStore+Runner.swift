import Glibc
import HeraldCore
import HeraldPOSIX

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
        try unavailableOnFailure { () throws(SystemError) in for dir in dirs { try sync.directory(dir) } }
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
        do { return try status(id).map(PassJob.job) ?? .missing } catch {
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
                            try writeTransition(next)
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
                    try writeTransition(next)
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
                try writeTransition(started)
                unlinkQuietly(marker(id))
                claimed = true
                return DirectoryClaim(store: self, job: started, lockPath: lockPath, lock: lock, slot: slot)
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

    /// Writes a transition of a job, fsynced and kept in durable/ (DirectoryStore+Status.swift).
    func writeTransition(_ job: Job) throws(StoreError) { try writeDurableStatus(job, syncNames: true) }

    /// Runners watch new/ and cancel/ alone: the status and log writes of their own jobs (thousands a
    /// second) would wake them for nothing.
    public func watchRunnerChanges() throws(StoreError) -> any StoreWatcher {
        try DirectoryWatcher(store: self, watched: [new, cancel])
    }

    /// Puts a job whose state is written as queued back in the queue, durably.
    func enqueue(_ id: JobID) throws(StoreError) {
        try touch(marker(id))
        try syncDirectories([queue])
    }

    func isCancelRequested(_ id: JobID) -> Bool { FileSystem.exists(cancelPath(id)) }

    func clearCancelRequest(_ id: JobID) { unlinkQuietly(cancelPath(id)) }

    /// Removes an ended job, its log and any leftovers.
    func remove(_ id: JobID) throws(StoreError) {
        // The status file goes last: a job is listed until everything else of it is gone.
        for path in [logPath(id), cancelPath(id), marker(id), durablePath(id)] { unlinkQuietly(path) }
        try unavailableOnFailure { () throws(SystemError) in _ = try FileSystem.unlink(statusPath(id)) }
    }
}
