// A store in memory, for unit tests of the runner, the hub and the store contract (after
// Hummingbird's MemoryPersistDriver): one Mutex'd state, watchers woken through an eventfd,
// claims alive until they finish or are abandoned. Nothing survives the process.
import HeraldCore
import HeraldPOSIX
import Synchronization

/// A `RunnerStore` held in memory; every method is safe from any thread.
public final class MemoryStore: RunnerStore, Sendable {
    struct State {
        var jobs: [JobID: Job] = [:]
        var queued: Set<JobID> = []
        /// The live claim of each running job, by its token; a write under another token is refused.
        var claims: [JobID: UInt64] = [:]
        /// Running jobs whose claim was abandoned: recovery's to retry or fail.
        var lost: Set<JobID> = []
        var cancelRequests: Set<JobID> = []
        var logs: [JobID: [UInt8]] = [:]
        var keys: [String: (bodyHash: String, id: JobID, made: Int64)] = [:]
        var watchers: [WeakWatcher] = []
        var nextToken: UInt64 = 1

        /// Tells every watcher of `change`.
        mutating func report(_ change: StoreChange) {
            watchers.removeAll { $0.watcher == nil }
            for entry in watchers { entry.watcher?.add(change) }
        }
    }

    let state = Mutex(State())

    /// An empty store.
    public init() {}

    // MARK: JobStore

    public func submit(_ job: Job) throws(StoreError) {
        state.withLock { state in
            guard state.jobs[job.id] == nil else { return }
            state.jobs[job.id] = job
            state.queued.insert(job.id)
            state.report(.submitted(job.id))
        }
    }

    public func submit(_ job: Job, idempotency record: IdempotencyRecord) throws(StoreError) -> IdempotentSubmit {
        let now = Clock.wallMilliseconds()
        return state.withLock { state in
            if let first = state.keys[record.keyHash], now - first.made < IdempotencyRecord.lifetime.milliseconds,
               let firstJob = state.jobs[first.id] {
                return first.bodyHash == record.bodyHash ? .repeated(firstJob) : .keyReused
            }
            // A new key, or one whose record lapsed or whose job is gone: free.
            state.keys[record.keyHash] = (record.bodyHash, job.id, now)
            if state.jobs[job.id] == nil {
                state.jobs[job.id] = job
                state.queued.insert(job.id)
                state.report(.submitted(job.id))
            }
            return .created(job)
        }
    }

    public func job(_ id: JobID) throws(StoreError) -> Job? { state.withLock { $0.jobs[id] } }

    public func jobs(_ filter: JobFilter) throws(StoreError) -> [Job] {
        let all = state.withLock { Array($0.jobs.values) }
        return Array(all.filter { job in
            (filter.before.map { job.id < $0 } ?? true) && filter.admits(state: job.state, kind: job.kind, owner: job.owner)
        }.sorted { $0.id > $1.id }.prefix(filter.limit))
    }

    public func jobCounts() throws(StoreError) -> [JobState: Int] {
        state.withLock { state in state.jobs.values.reduce(into: [:]) { $0[$1.state, default: 0] += 1 } }
    }

    public func requestCancel(_ id: JobID) throws(StoreError) {
        state.withLock { state in
            state.cancelRequests.insert(id)
            state.report(.cancelRequested(id))
        }
    }

    public func log(_ id: JobID, from offset: Int, maxBytes: Int) throws(StoreError) -> LogRead {
        let log = state.withLock { $0.logs[id] ?? [] }
        let bytes = offset < log.count ? Array(log[offset..<min(log.count, offset + maxBytes)]) : []
        return LogRead(bytes: bytes, atEnd: offset + bytes.count >= log.count)
    }

    public func watch() throws(StoreError) -> any StoreWatcher {
        let watcher: MemoryWatcher
        do { watcher = try MemoryWatcher() } catch { throw .unavailable("memory store: \(error)") }
        state.withLock { $0.watchers.append(WeakWatcher(watcher: watcher)) }
        return watcher
    }

    // MARK: RunnerStore

    public func ingest(kinds: [String: KindConfig]?, refused: (String, String) -> Void) throws(StoreError) -> Int { 0 }

    public func recoverLostJobs(kinds: [String: KindConfig], now: Timestamp) throws(StoreError) -> [Job] {
        state.withLock { state in
            var recovered: [Job] = []
            for id in state.lost.sorted() {
                state.lost.remove(id)
                guard let job = state.jobs[id], job.state == .running else { continue }
                let lost = JobError(.runnerLost, "the runner running attempt \(job.attempt) stopped unexpectedly")
                guard let next = job.applying(.aborted(lost), at: now, retries: kinds[job.kind]?.retries ?? 0) else { continue }
                state.jobs[id] = next
                if next.state == .queued { state.queued.insert(id) }
                state.report(.job(id))
                recovered.append(next)
            }
            return recovered
        }
    }

    public func cancelRequestedQueuedJobs(now: Timestamp) throws(StoreError) -> [Job] {
        state.withLock { state in
            var canceled: [Job] = []
            for id in state.cancelRequests.sorted() {
                guard let job = state.jobs[id] else {
                    state.cancelRequests.remove(id)
                    continue
                }
                switch job.state {
                case .running: continue  // its runner cancels it
                case .queued:
                    guard let next = job.applying(.cancel, at: now, retries: 0) else { continue }
                    state.jobs[id] = next
                    state.queued.remove(id)
                    state.report(.job(id))
                    canceled.append(next)
                default: break
                }
                state.cancelRequests.remove(id)
            }
            return canceled
        }
    }

    public func claimNext(kinds: [String: KindConfig], now: Timestamp) throws(StoreError) -> (any JobClaim)? {
        state.withLock { state -> (any JobClaim)? in
            var running: [String: Int] = [:]
            for id in state.claims.keys { if let kind = state.jobs[id]?.kind { running[kind, default: 0] += 1 } }
            for id in state.queued.sorted() {
                guard let job = state.jobs[id], job.state == .queued else {
                    state.queued.remove(id)
                    continue
                }
                guard let kind = kinds[exactly: job.kind] else { continue }
                if let limit = kind.concurrency, running[job.kind, default: 0] >= limit { continue }
                guard let started = job.applying(.start, at: now, retries: kind.retries) else { continue }
                state.queued.remove(id)
                state.jobs[id] = started
                let token = state.nextToken
                state.nextToken += 1
                state.claims[id] = token
                state.report(.job(id))
                return MemoryClaim(store: self, job: started, token: token)
            }
            return nil
        }
    }

    public func removeFinishedJobs(before cutoff: Timestamp, limit: Int, dryRun: Bool) throws(StoreError) -> [Job] {
        state.withLock { state in
            let due = state.jobs.values.filter { $0.state.isTerminal && ($0.finishedAt.map { $0 < cutoff } ?? false) }
                .sorted { ($0.finishedAt!, $0.id) < ($1.finishedAt!, $1.id) }
            let removed = dryRun ? due : Array(due.prefix(limit))
            guard !dryRun else { return removed }
            for job in removed {
                state.jobs[job.id] = nil
                state.logs[job.id] = nil
                state.cancelRequests.remove(job.id)
                state.report(.job(job.id))
            }
            return removed
        }
    }

    public func expireIdempotencyRecords(before cutoff: Timestamp, dryRun: Bool) throws(StoreError) -> Int {
        state.withLock { state in
            let expired = state.keys.filter { $0.value.made < cutoff.milliseconds }.map(\.key)
            if !dryRun { for key in expired { state.keys[key] = nil } }
            return expired.count
        }
    }

    // MARK: Claims

    /// Takes the running job's claim away, as another runner's recovery does after a cut-off (for tests).
    public func takeOver(_ id: JobID) {
        state.withLock { _ = $0.claims.removeValue(forKey: id) }
    }

    /// Runs `body` on the state if claim `token` still holds job `id`; `.claimLost` if not.
    func underClaim<T>(_ id: JobID, _ token: UInt64, _ body: (inout State) -> T) throws(StoreError) -> T {
        let result: T? = state.withLock { state in
            guard state.claims[id] == token else { return nil }
            return body(&state)
        }
        guard let result else { throw .claimLost(id) }
        return result
    }
}

/// A claim on a job of a `MemoryStore`: valid while the store names its token as the job's claim.
final class MemoryClaim: JobClaim, Sendable {
    let job: Job
    private let store: MemoryStore
    private let token: UInt64

    init(store: MemoryStore, job: Job, token: UInt64) {
        self.store = store
        self.job = job
        self.token = token
    }

    func writeProgress(_ job: Job) throws(StoreError) {
        try store.underClaim(job.id, token) { state in
            state.jobs[job.id] = job
            state.report(.job(job.id))
        }
    }

    func appendLog(_ bytes: [UInt8]) throws(StoreError) {
        try store.underClaim(job.id, token) { state in
            state.logs[job.id, default: []] += bytes
            state.report(.log(job.id))
        }
    }

    func logSize() throws(StoreError) -> Int { store.state.withLock { $0.logs[job.id]?.count ?? 0 } }

    func isCancelRequested() throws(StoreError) -> Bool { store.state.withLock { $0.cancelRequests.contains(job.id) } }

    func recordProcessGroup(_ group: Int32) {}

    func finish(_ job: Job) throws(StoreError) {
        try store.underClaim(job.id, token) { state in
            state.jobs[job.id] = job
            // A queued job keeps a cancel request: the next pass cancels it.
            if job.state == .queued { state.queued.insert(job.id) } else { state.cancelRequests.remove(job.id) }
            state.claims[job.id] = nil
            state.report(.job(job.id))
        }
    }

    func abandon() {
        store.state.withLock { state in
            guard state.claims[job.id] == token else { return }
            state.claims[job.id] = nil
            state.lost.insert(job.id)
        }
    }
}

/// The store's reference to a watcher: one its user let go of is dropped at the next change.
struct WeakWatcher {
    weak var watcher: MemoryWatcher?
}

/// A watcher of a `MemoryStore`: changes gather here, and its eventfd is readable while there are some.
final class MemoryWatcher: StoreWatcher, Sendable {
    private let signal: EventFD
    private let pending = Mutex<Set<StoreChange>>([])

    init() throws(SystemError) { signal = try EventFD() }

    var fd: Int32? { signal.fd.rawValue }
    var pollIntervalMilliseconds: Int { 250 }

    func add(_ change: StoreChange) {
        pending.withLock { _ = $0.insert(change) }
        signal.signal()
    }

    func changes() throws(StoreError) -> [StoreChange] {
        signal.drain()
        return pending.withLock { pending in
            defer { pending.removeAll() }
            return Array(pending)
        }
    }

    deinit { signal.fd.close() }
}
