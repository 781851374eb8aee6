import HeraldCore

/// Why the store could not do what was asked. Messages name the store ("state directory /x: …", "PostgreSQL: …").
public enum StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The store cannot be reached or written now (full, read-only, down): the API answers 503, the CLI exits 69.
    case unavailable(String)
    /// A job's stored state does not hold a valid job.
    case corrupt(String)
    /// The store is where it cannot work (a network filesystem, a schema of another version): only another configuration helps.
    case unsuitable(String)
    /// A write under a claim that another runner has taken over: refused, so a cut-off runner never overwrites its successor.
    case claimLost(JobID)

    public var description: String {
        switch self {
        case let .unavailable(why): return "store unavailable: \(why)"
        case let .corrupt(why): return "corrupt job state: \(why)"
        case let .unsuitable(why): return "store unsuitable: \(why)"
        case let .claimLost(id): return "claim lost: job \(id) was taken over by another runner; this attempt's writes are refused"
        }
    }
}

/// Which jobs a listing wants: newest first, optionally by state, kind and owner, older than `before`.
public struct JobFilter: Sendable {
    public var state: JobState?
    public var kind: String?
    public var owner: String?
    public var limit: Int
    public var before: JobID?

    public init(state: JobState? = nil, kind: String? = nil, owner: String? = nil, limit: Int = 100, before: JobID? = nil) {
        self.state = state
        self.kind = kind
        self.owner = owner
        self.limit = limit
        self.before = before
    }

    /// Whether a job of this state, kind and owner passes the filter's conditions.
    public func admits(state: JobState, kind: String, owner: String?) -> Bool {
        (self.state.map { $0 == state } ?? true) && (self.kind.map { $0 == kind } ?? true) && (self.owner.map { $0 == owner } ?? true)
    }
}

/// Something that changed in the store, as the watcher reports it.
public enum StoreChange: Hashable, Sendable {
    /// The job's status was written (or it was submitted).
    case job(JobID)
    /// The job's log grew.
    case log(JobID)
    /// Someone asked to cancel the job.
    case cancelRequested(JobID)
    /// A new submission is waiting for a runner.
    case submitted(JobID)
    /// Changes may have been missed (a watch queue overflowed, a lost connection is back): re-read
    /// everything served (the hub: every followed job and log; a runner: a full pass, and a cancel
    /// check of every running attempt).
    case everything
}

/// Reports store changes; pollable through `fd` where the backend has one.
public protocol StoreWatcher: AnyObject {
    /// A descriptor that becomes readable when changes are waiting, or nil: then call `changes()` every `pollInterval`.
    var fd: Int32? { get }
    /// How often to call `changes()` when there is no descriptor, in milliseconds.
    var pollIntervalMilliseconds: Int { get }
    /// The changes since the last call (deduplicated, in no particular order).
    func changes() throws(StoreError) -> [StoreChange]
}

/// Some of a job's output, as `JobStore.log` read it.
public struct LogRead: Sendable, Equatable {
    /// The bytes from the offset asked for.
    public let bytes: [UInt8]
    /// Nothing followed them in the log when it was read.
    public let atEnd: Bool

    /// `bytes`, and whether they reached the end of the log.
    public init(bytes: [UInt8], atEnd: Bool) {
        self.bytes = bytes
        self.atEnd = atEnd
    }
}

/// An `Idempotency-Key` submission as the store keeps it: hashes only, never the key or the token (SPEC §9).
public struct IdempotencyRecord: Sendable, Equatable {
    /// SHA-256 (hex) of the submitter's scope and the key: names the record.
    public let keyHash: String
    /// SHA-256 (hex) of the body in canonical JSON: a repeat must carry the same.
    public let bodyHash: String

    /// A record; both hashes are 64 lowercase hex digits.
    public init(keyHash: String, bodyHash: String) {
        self.keyHash = keyHash
        self.bodyHash = bodyHash
    }

    /// How long a key answers repeats (SPEC §9: 24 h); then it is free again, whether or not gc removed its record.
    public static let lifetime = HeraldDuration.seconds(86_400)
}

/// What an idempotent submit did.
public enum IdempotentSubmit: Sendable, Equatable {
    /// The key was new: this job was submitted.
    case created(Job)
    /// The key named a job already, submitted with the same body: that job, as it is now.
    case repeated(Job)
    /// The key named a job submitted with another body.
    case keyReused
}

/// What the web side may do with jobs: read them, submit new ones, ask for cancellation. It never writes job state.
public protocol JobStore: Sendable {
    /// Makes a submitted job visible to runners, entirely or not at all.
    func submit(_ job: Job) throws(StoreError)
    /// Submits `job` unless `record`'s key names a job already (then returns that one), exactly once
    /// across every process sharing the store. A repeat waits briefly for a first submission still
    /// under way, and is `unavailable` if it does not appear.
    func submit(_ job: Job, idempotency record: IdempotencyRecord) throws(StoreError) -> IdempotentSubmit
    /// The job's current state, or nil if there is no such job.
    func job(_ id: JobID) throws(StoreError) -> Job?
    /// Jobs matching `filter`, newest first.
    func jobs(_ filter: JobFilter) throws(StoreError) -> [Job]
    /// The jobs among `ids` that could be read now, each with its state (nil: no such job); an id left
    /// out could not be read now (the stream hub reads it again a second later). One round trip where the store has them.
    func jobs(ids: [JobID]) -> [(id: JobID, job: Job?)]
    /// Whether a read waits for another process (a database, maybe on another host) rather than reading
    /// a local file: the stream hub then reads changed jobs off its thread, so no stream waits for it.
    var readsAreRoundTrips: Bool { get }
    /// How many jobs the store holds in each state (for /healthz and /metrics).
    func jobCounts() throws(StoreError) -> [JobState: Int]
    /// Asks the runner to cancel the job (idempotent).
    func requestCancel(_ id: JobID) throws(StoreError)
    /// Up to `maxBytes` of the job's output from byte `offset` (empty when there is none yet).
    func log(_ id: JobID, from offset: Int, maxBytes: Int) throws(StoreError) -> LogRead
    /// A watcher for every change in the store: one for the whole store, never one per job.
    func watch() throws(StoreError) -> any StoreWatcher
}

extension JobStore {
    /// Reads are local file reads unless the store says otherwise.
    public var readsAreRoundTrips: Bool { false }

    /// One read a job, for stores where a read costs no round trip; a job that cannot be read is left out alone.
    public func jobs(ids: [JobID]) -> [(id: JobID, job: Job?)] {
        ids.compactMap { id in
            do { return (id, try job(id)) } catch { return nil }
        }
    }
}
