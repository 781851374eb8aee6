// Idempotent submit in the state directory (SPEC §9).
//
// idempotency/KEYHASH holds {"body": BODYHASH, "job": JOB}. It is written whole to tmp/ and
// given its name with link(2), which fails if the name exists: of any number of requests
// with one key, in any process on this host, exactly one creates the record, and only
// then submits the job. The others read the record (complete, since it appeared by link)
// and wait briefly for its job. gc removes records older than 24 h.
import Glibc
import HeraldCore
import HeraldPOSIX

extension DirectoryStore {
    /// How long a repeat waits for the first request's job to appear, in milliseconds.
    static let idempotencyWaitMilliseconds: Int64 = 5_000

    func idempotencyPath(_ record: IdempotencyRecord) -> String { "\(idempotency)/\(record.keyHash)" }

    public func submit(_ job: Job, idempotency record: IdempotencyRecord) throws(StoreError) -> IdempotentSubmit {
        guard record.keyHash.utf8.count == 64, record.keyHash.utf8.allSatisfy({ isHexDigit($0) }) else {
            preconditionFailure("an idempotency key hash is 64 hex digits")
        }
        let path = idempotencyPath(record)
        let text = JSON.object([("body", .string(record.bodyHash)), ("job", job.json(urlPrefix: nil))]).text + "\n"
        if try createByLink(path, with: Array(text.utf8)) {
            do { try submit(job) } catch {
                _ = try? FileSystem.unlink(path)  // the key is free again: a retry may submit
                throw error
            }
            return .created(job)
        }
        return try repeated(path, record)
    }

    /// The answer to a repeat: the recorded job as it is now, or `keyReused` for another body.
    private func repeated(_ path: String, _ record: IdempotencyRecord) throws(StoreError) -> IdempotentSubmit {
        let bytes: [UInt8]?
        do { bytes = try FileSystem.read(path) } catch { throw .unavailable(error.description) }
        // Removed meanwhile (gc, or a first request whose submit failed): nothing to repeat.
        guard let bytes else { throw .unavailable("the first request with this Idempotency-Key did not complete; try again") }
        guard let json = try? JSON.parse(bytes), let body = json["body"]?.stringValue, let first = json["job"].flatMap(Job.init(json:)) else {
            throw .corrupt("\(path) does not hold an idempotency record")
        }
        guard body == record.bodyHash else { return .keyReused }
        let deadline = Clock.monotonicMilliseconds() + DirectoryStore.idempotencyWaitMilliseconds
        while true {
            if let job = try self.job(first.id) { return .repeated(job) }
            if Clock.monotonicMilliseconds() >= deadline {
                throw .unavailable("the first request with this Idempotency-Key has not submitted its job yet; try again")
            }
            Clock.sleep(milliseconds: 5)
        }
    }

    /// Creates `path` holding `bytes`, complete from its first instant; false if it exists already.
    private func createByLink(_ path: String, with bytes: [UInt8]) throws(StoreError) -> Bool {
        let temp = "\(tmp)/\(getpid()).\(RandomSource.bytes(6).map { String($0, radix: 16) }.joined()).key"
        defer { _ = try? FileSystem.unlink(temp) }
        do {
            let fd = try FileDescriptor.open(temp, O_WRONLY | O_CREAT | O_EXCL, mode: 0o664)
            try fd.closeAfter { (fd) throws(SystemError) in
                try fd.writeAll(bytes)
                try fd.fsync()
            }
            return try FileSystem.link(temp, path)
        } catch {
            throw .unavailable(error.description)
        }
    }

    public func expireIdempotencyRecords(before cutoff: Timestamp, dryRun: Bool) throws(StoreError) -> Int {
        var count = 0
        for name in try names(idempotency) {
            let path = "\(idempotency)/\(name)"
            guard let made = FileSystem.modificationTime(path), made < cutoff.milliseconds else { continue }
            if !dryRun { _ = try unavailableOnFailure { () throws(SystemError) in try FileSystem.unlink(path) } }
            count += 1
        }
        return count
    }
}

private func isHexDigit(_ b: UInt8) -> Bool { (48...57).contains(b) || (97...102).contains(b) }
