import Foundation
import HeraldCore
import HeraldPOSIX
import HeraldStore

/// A thread of the hub's for the reads whose number grows with the jobs kept, not with the streams.
///
/// A dashboard's snapshot (every job not yet ended) and the jobs an inotify overflow reports are
/// read here, so the hub thread keeps sending events and heartbeats meanwhile. Results go back
/// through the hub's inbox, where they are merged by seq with what the hub saw in between.
final class HubReader: @unchecked Sendable {
    /// A job as read: nil when its file is gone.
    struct Read {
        let id: JobID
        let job: Job?
    }

    private let store: any JobStore
    private let urlPrefix: String
    private let deliver: @Sendable (StreamHub.Command) -> Void
    /// Whether the thread runs at a lower priority than the hub's (bulk reads of files).
    private let yieldsCPU: Bool
    private let condition = NSCondition()
    // Behind `condition`: requests not taken yet, merged (one listing serves every dashboard waiting).
    private var snapshotFor: [(token: UInt64, owner: String?)] = []
    private var reads: [JobID: Bool] = [:]
    private var logReads: Set<LogPiece.Origin> = []
    private var endedBefore: Int64 = .max

    /// Results per inbox command: the hub handles each command in one go.
    static let batch = 256

    init(store: any JobStore, urlPrefix: String, yieldsCPU: Bool, deliver: @escaping @Sendable (StreamHub.Command) -> Void) {
        self.store = store
        self.urlPrefix = urlPrefix
        self.yieldsCPU = yieldsCPU
        self.deliver = deliver
    }

    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "herald-reader"
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// Reads every job not yet ended (of `owner`, for an owner stream) for the stream `token`, which is already registered.
    func snapshot(for token: UInt64, owner: String?) {
        condition.withLock { snapshotFor.append((token, owner)) }
        condition.signal()
    }

    /// Reads the chunk of a job's log that `origin` names, and reports it (nil: it could not be read now).
    func readLog(_ origin: LogPiece.Origin) {
        condition.withLock { _ = logReads.insert(origin) }
        condition.signal()
    }

    /// Reads `ids` (true: a stream follows that job); a job that ended before `endedBefore`
    /// (wall ms) and is not followed is no news to any dashboard and is not reported.
    func read(_ ids: [JobID: Bool], endedBefore: Int64) {
        condition.withLock {
            reads.merge(ids) { $0 || $1 }
            // The earliest asked for: the hub still filters per dashboard.
            self.endedBefore = min(self.endedBefore, endedBefore)
        }
        condition.signal()
    }

    private func run() {
        // Bulk reads yield the CPU to the hub thread (and nginx): on a busy 2-core machine an
        // equal reader took the hub's core while an overflow's 30,000 jobs were read.
        if yieldsCPU { try? ThisThread.lowerPriority(nice: 10) }
        while true {
            condition.lock()
            while snapshotFor.isEmpty && reads.isEmpty && logReads.isEmpty { condition.wait() }
            let waiting = snapshotFor, ids = reads, endedBefore = endedBefore, logs = logReads
            snapshotFor = []
            reads = [:]
            logReads = []
            self.endedBefore = .max
            condition.unlock()
            // Changes first: a snapshot may take seconds, and changes wait behind it.
            let order = Array(ids.keys)
            for start in stride(from: 0, to: order.count, by: HubReader.batch) {
                // One read a batch; a job left out could not be read now, and the hub asks again.
                let batch = order[start..<min(start + HubReader.batch, order.count)]
                let read = store.jobs(ids: Array(batch))
                let found = read.compactMap { id, job -> Read? in
                    if ids[id] != true {
                        guard let job, job.finishedAt.map({ $0.milliseconds >= endedBefore }) ?? true else { return nil }
                    }
                    return Read(id: id, job: job)
                }
                let unreadable = ReadRetries.leftOut(batch, by: read)
                if !found.isEmpty || !unreadable.isEmpty { deliver(.jobsRead(found, unreadable: unreadable)) }
            }
            for origin in logs {
                let read = try? store.log(origin.job, from: origin.offset, maxBytes: StreamHub.logChunkBytes)
                deliver(.logRead(origin, read))
            }
            if !waiting.isEmpty {
                // One listing for every stream waiting; each owner stream gets its owner's part.
                var listing: [(owner: String?, entry: DashboardSnapshot.Entry)] = []
                for state in [JobState.queued, .running] {
                    for job in (try? store.jobs(JobFilter(state: state, limit: 100_000))) ?? [] {
                        listing.append((job.owner, .init(id: job.id, seq: job.seq, event: StreamHub.dashboardEvent(job, urlPrefix: urlPrefix))))
                    }
                }
                let byOwner = Dictionary(grouping: waiting, by: { $0.owner })
                for (owner, group) in byOwner {
                    let entries = owner == nil ? listing.map(\.entry) : listing.filter { $0.owner == owner }.map(\.entry)
                    deliver(.snapshot(tokens: group.map(\.token), jobs: entries))
                }
            }
        }
    }
}
