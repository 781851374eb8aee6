// Idempotent submit in the state directory (SPEC §9).
//
// idempotency/KEYHASH holds {"body": BODYHASH, "job": JOB}. It is written whole to tmp/ and
// given its name with link(2), which fails if the name exists: of any number of requests
// with one key, in any process on this host, exactly one creates the record, and only
// then submits the job. The others read the record (complete, since it appeared by link)
// and wait briefly for its job. gc removes records older than 24 h.
//
// A record past the key's 24 h, or whose job is gone for good (removed by gc or by hand, or
// never submitted because its request died in between; the record is then older than
// `orphanAgeMilliseconds`), frees the key: a repeat finding it takes it over. Of several such
// repeats exactly one wins, by creating KEYHASH.after-JOBID (the stale job's id) with link(2);
// it renames its own record over the stale one and submits. The markers stay until gc, so a
// repeat that read the stale record late cannot win again.
import Glibc
import HeraldCore
import HeraldPOSIX

extension DirectoryStore {
    /// How long a repeat waits for the first request's job to appear, in milliseconds.
    static let idempotencyWaitMilliseconds: Int64 = 5_000
    /// A record this old whose job does not exist will never see it: its key is free again.
    static let orphanAgeMilliseconds: Int64 = 60_000

    func idempotencyPath(_ record: IdempotencyRecord) -> String { "\(idempotency)/\(record.keyHash)" }

    public func submit(_ job: Job, idempotency record: IdempotencyRecord) throws(StoreError) -> IdempotentSubmit {
        guard record.keyHash.utf8.count == 64, record.keyHash.utf8.allSatisfy({ isHexDigit($0) }) else {
            preconditionFailure("an idempotency key hash is 64 hex digits")
        }
        let path = idempotencyPath(record)
        let text = JSON.object([("body", .string(record.bodyHash)), ("job", job.json(urlPrefix: nil))]).text + "\n"
        if try createByLink(path, with: Array(text.utf8)) { return try submitRecorded(job, path) }
        let deadline = Clock.monotonicMilliseconds() + DirectoryStore.idempotencyWaitMilliseconds
        while true {
            // The record is read again each time: another repeat may have taken the key over meanwhile.
            switch try repeated(path, record) {
            case let .answer(answer): return answer
            case let .free(stale):
                if try createByLink("\(path).after-\(stale)", with: Array(text.utf8), replacing: path) { return try submitRecorded(job, path) }
                // Another repeat took the key over: its record replaces the stale one in a moment.
            case .pending: break
            }
            if Clock.monotonicMilliseconds() >= deadline {
                throw .unavailable("the first request with this Idempotency-Key has not submitted its job yet; try again")
            }
            Clock.sleep(milliseconds: 5)
        }
    }

    /// Submits `job`, whose record is at `path`; a failure frees the key, so a retry may submit.
    private func submitRecorded(_ job: Job, _ path: String) throws(StoreError) -> IdempotentSubmit {
        do { try submit(job) } catch {
            _ = try? FileSystem.unlink(path)
            throw error
        }
        return .created(job)
    }

    /// What a repeat finds: an answer, a record that no longer holds the key (past its 24 h, or its
    /// job gone for good), or a record whose job is not there yet.
    private enum Repeat {
        case answer(IdempotentSubmit)
        case free(staleJob: JobID)
        case pending
    }

    /// The answer to a repeat, as the record is now: the recorded job as it is now, or `keyReused` for another body.
    private func repeated(_ path: String, _ record: IdempotencyRecord) throws(StoreError) -> Repeat {
        let bytes: [UInt8]?
        do { bytes = try FileSystem.read(path) } catch { throw unavailable(error) }
        // Removed meanwhile (gc, or a first request whose submit failed): nothing to repeat.
        guard let bytes else { throw .unavailable("the first request with this Idempotency-Key did not complete; try again") }
        guard let json = try? JSON.parse(bytes), let body = json["body"]?.stringValue, let first = json["job"].flatMap(Job.init(json:)) else {
            throw .corrupt("\(path) does not hold an idempotency record")
        }
        // Stated after the read: a record replaced in between is newer, so its age is never overstated.
        let age = FileSystem.modificationTime(path).map { Clock.wallMilliseconds() - $0 } ?? 0
        // Past its lifetime the key is free, whatever the body, though gc may not have run yet.
        if age >= IdempotencyRecord.lifetime.milliseconds { return .free(staleJob: first.id) }
        guard body == record.bodyHash else { return .answer(.keyReused) }
        if let job = try self.job(first.id) { return .answer(.repeated(job)) }
        return age >= DirectoryStore.orphanAgeMilliseconds ? .free(staleJob: first.id) : .pending
    }

    /// Creates `path` holding `bytes`, complete from its first instant; false if it exists already.
    /// With `replacing`, the file then also replaces that path (atomically, by rename).
    private func createByLink(_ path: String, with bytes: [UInt8], replacing: String? = nil) throws(StoreError) -> Bool {
        let temp = DirectoryStore.tempPath(in: tmp)
        defer { _ = try? FileSystem.unlink(temp) }
        do {
            let fd = try FileDescriptor.open(temp, O_WRONLY | O_CREAT | O_EXCL, mode: 0o664)
            try fd.closeAfter { (fd) throws(SystemError) in
                try fd.writeAll(bytes)
                try sync.file(fd, temp)
            }
            guard try FileSystem.link(temp, path) else { return false }
            if let replacing { try FileSystem.rename(temp, replacing) }
            // Durable before the job is submitted: a power cut must not keep the job and lose its key,
            // or a repeat after it would submit a second job.
            try sync.directory(idempotency)
            return true
        } catch {
            throw unavailable(error)
        }
    }

    public func expireIdempotencyRecords(before cutoff: Timestamp, dryRun: Bool) throws(StoreError) -> Int {
        var count = 0
        for name in try names(idempotency) {
            let path = "\(idempotency)/\(name)"
            guard let made = FileSystem.modificationTime(path), made < cutoff.milliseconds else { continue }
            if !dryRun { _ = try unavailableOnFailure { () throws(SystemError) in try FileSystem.unlink(path) } }
            if !name.contains(".") { count += 1 }  // a key's record, not a takeover's marker
        }
        return count
    }
}

private func isHexDigit(_ b: UInt8) -> Bool { (48...57).contains(b) || (97...102).contains(b) }
