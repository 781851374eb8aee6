import Glibc
import HeraldCore
import HeraldPOSIX

// Ingest: submissions in new/ become queued jobs, checked as the runner's own copies.
extension DirectoryStore {
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
                    try writeDurableStatus(job, syncNames: false)
                    ingested.append(id)
                case let .fail(job):
                    refused(name, "\(job.error?.message ?? ""): the job is kept, failed")
                    try writeDurableStatus(job, syncNames: false)
                    settled.append((id, nil))
                case let .refuse(refusal):
                    refused(name, "\(refusal.reason): \(removeFromNew(name))")
                }
            }
            guard !ingested.isEmpty || !settled.isEmpty else { return 0 }
            // Markers and jobs are durable before any submission goes: whatever a power cut keeps of
            // new/ (another writer's fsync of new/ may make an unlink durable early), a job is never nowhere.
            try syncDirectories([queue, jobsDir, durableDir])
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
            default: throw unavailable(error)
            }
        }
    }
}
