// The state directory: the filesystem is the database (after nq and Maildir).
//
//   tmp/              submissions being written (web and CLI); renamed into new/ when complete
//   runner-tmp/       job states being written by runners (0700: only they can touch a file here)
//   new/ID.json       submissions not yet seen by a runner (web and CLI: tmp → fsync → rename)
//   jobs/ID.json      the job's latest status; only runners write it (runner-tmp → rename; fsynced at transitions)
//   durable/ID.json   the job's last transition (a second name of that file): readers fall back to it
//                     when a crash left jobs/ID.json empty or torn
//   queue/ID          an empty marker per queued job, so claiming never reads finished jobs
//   running/ID.lock   flock held by the runner process running the job: held = alive
//   slots/KIND.N.lock flock per concurrency slot of a kind, across all runner processes
//   cancel/ID         an empty file: someone asked to cancel the job
//   logs/ID.log       the job program's output
//   idempotency/HASH  an Idempotency-Key's record: its body's hash and its job (created by link(2))
//   queue.lock        flock serializing ingest, claim and recovery across runners
//
// queue/, running/ and slots/ are the runner's alone (0700), and every lock file is 0600: flock needs
// only a read descriptor, so a lock file the web user could open is a lock it could hold for ever.
//
// Readers never see a partial file because every file with content appears by rename; after a crash,
// a progress write (not fsynced) may be, and then the job's durable copy is read instead.
// docs/PROTOCOL.md tells the whole protocol.
import Glibc
import HeraldCore
import HeraldPOSIX
import Synchronization

/// The state directory store, shared by herald-fcgi and herald-runner.
public final class DirectoryStore: JobStore, @unchecked Sendable {
    // Immutable after init but for `ended`, which is behind a lock; every method is safe from any thread.
    public let root: String
    /// The largest submission file ingest reads: far above any job herald-fcgi writes for a request of
    /// `max_body_bytes` (its JSON re-encoded at most doubles in size), far below what hurts a runner.
    public let maxSubmissionBytes: Int
    let tmp, runnerTmp, new, jobsDir, durableDir, queue, running, slots, cancel, logs, idempotency: String
    /// What to warn the operator about the filesystem under `root` (FUSE), or nil.
    public let filesystemWarning: String?
    /// Every fsync of a file or a directory goes through here.
    let sync: StoreSync
    /// State and kind of the ended jobs seen so far: an ended job's file never changes again (gc only
    /// removes it), so listing and counting read each one once instead of on every request.
    private let ended = Mutex<[JobID: EndedJob]>([:])

    /// What listing and counting need of an ended job.
    private struct EndedJob {
        let state: JobState
        let kind: String
        let owner: String?
        let finishedAt: Timestamp?
    }

    /// Opens the store at `root`. With `create`, makes the directories that are missing (the runner does; the web side only checks).
    /// Refuses (`unsuitable`) a root on a network filesystem, where the watcher would miss other hosts' writes.
    public convenience init(root: String, create: Bool, maxBodyBytes: Int = Config().maxBodyBytes) throws(StoreError) {
        try self.init(root: root, create: create, maxBodyBytes: maxBodyBytes, sync: .system)
    }

    /// A store whose fsyncs go through `sync` (tests record them).
    init(root: String, create: Bool, maxBodyBytes: Int, sync: StoreSync) throws(StoreError) {
        self.root = root
        self.sync = sync
        maxSubmissionBytes = 4 * maxBodyBytes + 65536
        tmp = root + "/tmp"
        runnerTmp = root + "/runner-tmp"
        new = root + "/new"
        jobsDir = root + "/jobs"
        durableDir = root + "/durable"
        queue = root + "/queue"
        running = root + "/running"
        slots = root + "/slots"
        cancel = root + "/cancel"
        logs = root + "/logs"
        idempotency = root + "/idempotency"
        // The web side never needs runner-tmp/, nor durable/ (read only when a crash cut a status file
        // short): an upgraded herald-fcgi starts before the runner made them.
        let all = [root, tmp, new, jobsDir, queue, running, slots, cancel, logs, idempotency] + (create ? [runnerTmp, durableDir] : [])
        let runnersOnly: Set = [runnerTmp, queue, running, slots]
        for dir in all {
            if create {
                do {
                    if runnersOnly.contains(dir) { try FileSystem.makePrivateDirectory(dir) } else { try FileSystem.makeDirectory(dir) }
                } catch { throw DirectoryStore.unavailable(root, error) }
            } else if !FileSystem.exists(dir) {
                throw DirectoryStore.unavailable(root, "\(dir) is missing (herald-runner creates it on its first start)")
            }
        }
        let filesystem: StateFilesystem
        do { filesystem = StateFilesystem(magic: try FileSystem.filesystemType(root)) } catch { throw DirectoryStore.unavailable(root, error) }
        if let refusal = filesystem.refusal(root: root) { throw .unsuitable("state directory \(refusal)") }
        filesystemWarning = filesystem.warning(root: root)
    }

    func statusPath(_ id: JobID) -> String { "\(jobsDir)/\(id.text).json" }
    func durablePath(_ id: JobID) -> String { "\(durableDir)/\(id.text).json" }
    func submissionPath(_ id: JobID) -> String { "\(new)/\(id.text).json" }
    func logPath(_ id: JobID) -> String { "\(logs)/\(id.text).log" }
    func cancelPath(_ id: JobID) -> String { "\(cancel)/\(id.text)" }

    /// The store is unavailable for `why`: the message names the state directory.
    static func unavailable(_ root: String, _ why: some CustomStringConvertible) -> StoreError {
        .unavailable("state directory \(root): \(why)")
    }

    func unavailable(_ why: some CustomStringConvertible) -> StoreError { DirectoryStore.unavailable(root, why) }

    /// Runs a filesystem step; a failing syscall makes the store unavailable (the API's 503).
    func unavailableOnFailure<T>(_ body: () throws(SystemError) -> T) throws(StoreError) -> T {
        do { return try body() } catch { throw unavailable(error) }
    }

    // MARK: Writing a file whole

    /// A fresh name in `dir` for a file being written: the pid says whose it is, the random part keeps threads apart.
    static func tempPath(in dir: String) -> String {
        "\(dir)/\(getpid()).\(RandomSource.bytes(6).map { String($0, radix: 16) }.joined()).tmp"
    }

    /// Writes `bytes` to a temp file in `tempDir`, fsyncs it and renames it over `path`: readers see the old
    /// file or the new, never a part. Only who may write `path` may write `tempDir`: a file another user can
    /// replace between the write and the rename is that user's content under this writer's name.
    /// `linkedAs` gives the same file a second name (a hard link made from the temp file, so it is surely
    /// this content), renamed into place after `path`; `syncDirectories` are fsynced last.
    func replaceAtomically(_ path: String, with bytes: [UInt8], tempDir: String, linkedAs copy: String? = nil,
                           syncDirectories: [String] = []) throws(StoreError) {
        let temp = DirectoryStore.tempPath(in: tempDir)
        let second = copy.map { _ in DirectoryStore.tempPath(in: tempDir) }
        do throws(SystemError) {
            let fd = try FileDescriptor.open(temp, O_WRONLY | O_CREAT | O_EXCL, mode: 0o664)
            try fd.closeAfter { (fd) throws(SystemError) in
                try fd.writeAll(bytes)
                try sync.file(fd, temp)
            }
            if let second, !(try FileSystem.link(temp, second)) { throw SystemError("link", errno: EEXIST, path: second) }
            try FileSystem.rename(temp, path)
            if let second, let copy { try FileSystem.rename(second, copy) }
            for dir in syncDirectories { try sync.directory(dir) }
        } catch {
            // Nothing half-written stays behind.
            _ = try? FileSystem.unlink(temp)
            if let second { _ = try? FileSystem.unlink(second) }
            throw unavailable(error)
        }
    }

    static func encode(_ job: Job) -> [UInt8] {
        var bytes = job.json(urlPrefix: nil).bytes
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }

    func decode(_ bytes: [UInt8], _ path: String) throws(StoreError) -> Job {
        guard let json = try? JSON.parse(bytes), let job = Job(json: json) else { throw .corrupt("\(path) does not hold a job") }
        return job
    }

    func read(_ path: String) throws(StoreError) -> Job? {
        let bytes: [UInt8]?
        do { bytes = try FileSystem.read(path) } catch { throw unavailable(error) }
        guard let bytes else { return nil }
        return try decode(bytes, path)
    }

    func names(_ dir: String) throws(StoreError) -> [String] {
        try unavailableOnFailure { () throws(SystemError) in try FileSystem.list(dir) }
    }

    static func id(fromFileName name: String, suffix: String) -> JobID? {
        guard name.hasSuffix(suffix) else { return nil }
        return JobID(name.dropLast(suffix.count))
    }

    // MARK: JobStore

    public func submit(_ job: Job) throws(StoreError) {
        try replaceAtomically(submissionPath(job.id), with: DirectoryStore.encode(job), tempDir: tmp, syncDirectories: [new])
    }

    /// Whether runners will read this job's submission: none over `maxSubmissionBytes` is (herald-fcgi's
    /// body limit keeps its jobs far below; the CLI must ask, or an accepted job would be refused later).
    public func admitsSubmission(_ job: Job) -> Bool { DirectoryStore.encode(job).count <= maxSubmissionBytes }

    public func job(_ id: JobID) throws(StoreError) -> Job? { try located(id)?.job }

    /// The job, and whether it was read from jobs/ (written by a runner) rather than new/ (a submission).
    private func located(_ id: JobID) throws(StoreError) -> (job: Job, isStatus: Bool)? {
        // A runner moves new/ID.json to jobs/ID.json by rename: look in jobs/ again after new/
        // so a job being moved between the two lookups is not missed.
        if let job = try status(id) { return (job, true) }
        if let job = try submission(id) { return (job, false) }
        return try status(id).map { ($0, true) }
    }

    /// The job in new/ID.json, nil when there is none. The web user writes new/, so it is read as ingest
    /// reads it: a FIFO there would hang `herald-runner list` and `status`, a symlink would be followed.
    private func submission(_ id: JobID) throws(StoreError) -> Job? {
        switch try readSubmission(id) {
        case let .success(bytes):
            guard let bytes else { return nil }
            return try decode(bytes, submissionPath(id))
        case let .failure(refusal): throw .corrupt("\(submissionPath(id)) is not a submission: \(refusal.reason)")
        }
    }

    public func jobs(_ filter: JobFilter) throws(StoreError) -> [Job] {
        let (ids, known) = try listedJobs()
        var result: [Job] = []
        for id in ids.sorted(by: >) where filter.before.map({ id < $0 }) ?? true {
            if let seen = known[id], !filter.admits(state: seen.state, kind: seen.kind, owner: seen.owner) { continue }
            guard let found = try? located(id) else { continue }  // gone or unreadable meanwhile: skip it
            let job = found.job
            remember(found)
            guard filter.admits(state: job.state, kind: job.kind, owner: job.owner) else { continue }
            result.append(job)
            if result.count >= filter.limit { break }
        }
        return result
    }

    public func jobCounts() throws(StoreError) -> [JobState: Int] {
        let (ids, known) = try listedJobs()
        var counts: [JobState: Int] = [:]
        for id in ids {
            if let seen = known[id] {
                counts[seen.state, default: 0] += 1
            } else if let found = try? located(id) {
                remember(found)
                counts[found.job.state, default: 0] += 1
            }
        }
        return counts
    }

    /// The IDs of every job in new/ and jobs/, and what is known of the ended ones (forgetting those gc removed).
    private func listedJobs() throws(StoreError) -> (Set<JobID>, [JobID: EndedJob]) {
        var ids = Set<JobID>()
        // new/ first: ingest writes jobs/ID.json before it removes new/ID.json, so a job moving
        // meanwhile is seen in one or both, never in neither.
        for name in try names(new) { if let id = DirectoryStore.id(fromFileName: name, suffix: ".json") { ids.insert(id) } }
        for name in try names(jobsDir) { if let id = DirectoryStore.id(fromFileName: name, suffix: ".json") { ids.insert(id) } }
        let known = ended.withLock { ended in
            ended = ended.filter { ids.contains($0.key) }
            return ended
        }
        return (ids, known)
    }

    /// Records an ended job's state and kind, if a runner wrote it: a file in new/ (forgeable by the web user) may claim anything.
    private func remember(_ found: (job: Job, isStatus: Bool)) {
        guard found.isStatus, found.job.state.isTerminal else { return }
        ended.withLock {
            $0[found.job.id] = EndedJob(state: found.job.state, kind: found.job.kind, owner: found.job.owner, finishedAt: found.job.finishedAt)
        }
    }

    /// For `RunnerStore.removeFinishedJobs`: what is remembered of ended jobs spares reading them on every batch.
    public func removeFinishedJobs(before cutoff: Timestamp, limit: Int, dryRun: Bool) throws(StoreError) -> [Job] {
        let (ids, known) = try listedJobs()
        var due: [(end: Timestamp, id: JobID)] = []
        for id in ids {
            if let seen = known[id] {
                if let end = seen.finishedAt, end < cutoff { due.append((end, id)) }
                continue
            }
            guard let found = try? located(id), found.isStatus, found.job.state.isTerminal else { continue }
            remember(found)
            if let end = found.job.finishedAt, end < cutoff { due.append((end, id)) }
        }
        due.sort { ($0.end, $0.id) < ($1.end, $1.id) }
        var removed: [Job] = []
        for (_, id) in dryRun ? due[...] : due.prefix(limit) {
            guard let job = try? status(id), job.state.isTerminal else { continue }
            if !dryRun { try remove(id) }
            removed.append(job)
        }
        return removed
    }

    public func requestCancel(_ id: JobID) throws(StoreError) {
        // An empty file appears whole by creation: no temp file needed.
        try unavailableOnFailure { () throws(SystemError) in try FileDescriptor.open(cancelPath(id), O_WRONLY | O_CREAT, mode: 0o664).close() }
    }

    public func log(_ id: JobID, from offset: Int, maxBytes: Int) throws(StoreError) -> LogRead {
        do {
            let fd = try FileDescriptor.open(logPath(id), O_RDONLY)
            return try fd.closeAfter { (fd) throws(SystemError) -> LogRead in
                // Sized by what the file holds (the log route asks for up to 11 MiB, mostly of far less),
                // and that size tells whether the read reached the end: no second read to find out.
                let size = try fd.size()
                let bytes = try fd.read(at: offset, upTo: min(maxBytes, max(0, size - offset)))
                return LogRead(bytes: bytes, atEnd: offset + bytes.count >= size)
            }
        } catch {
            if error.errno == ENOENT { return LogRead(bytes: [], atEnd: true) }
            throw unavailable(error)
        }
    }

    public func watch() throws(StoreError) -> any StoreWatcher {
        try DirectoryWatcher(store: self)
    }
}
