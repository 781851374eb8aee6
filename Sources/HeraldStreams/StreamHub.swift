import Foundation
import Glibc
import HeraldCore
import HeraldPOSIX
import HeraldStore
import Synchronization

/// The parked-stream hub: one thread that owns every open event stream.
///
/// A stream costs no thread once parked. The hub waits in epoll on the connections (for
/// hang-ups and writability), on the store watcher (one for the whole state directory) and on
/// an eventfd inbox. Each change is read once and encoded once per job, then written to every
/// subscriber whose socket takes it; a subscriber whose socket is full gets the latest state
/// when it drains (states merge, never reorder), and is dropped past the write deadline.
public final class StreamHub: @unchecked Sendable {
    // Everything below `inbox` is touched by the hub thread only.
    let store: any JobStore
    let urlPrefix: String
    let heartbeatMilliseconds: Int64
    let writeDeadlineMilliseconds: Int64
    let maxOutboxBytes: Int
    let log: @Sendable (String) -> Void
    /// Counters for /metrics, updated by the hub thread.
    public let metrics = StreamMetrics()

    private let inbox = Mutex<[Command]>([])
    private let inboxSignal: EventFD
    let epoll: Epoll
    /// The store's change notices, read when its fd in the epoll is readable.
    let watcher: any StoreWatcher
    /// Reads whose number grows with the jobs kept, off this thread: dashboard snapshots (seconds
    /// with 100,000 jobs) on one, the changed jobs only dashboards care about on the other, so
    /// that those never wait behind a snapshot.
    private var snapshotReader: HubReader!
    var changeReader: HubReader!
    /// Whether every read goes to the reader thread (the store's reads are round trips): a round trip on the hub
    /// thread held every stream of the node, for each round's changes, each new stream and each log chunk.
    let readsOffThread: Bool
    /// The most followed jobs the hub thread reads in one round; a reader reads the rest (all of them, off thread).
    var readsPerRound: Int { readsOffThread ? 0 : 128 }

    var subscribers: [UInt64: Subscriber] = [:]
    /// Each followed job's streams; closed ones stay (marked closed, passed by) until the round ends.
    var followers = Followers<Subscriber>()
    var dashboards: Set<UInt64> = []
    /// Owner streams by owner: a change of a job reaches only its owner's streams (and the dashboards),
    /// so the fan-out costs the streams that want it, never a pass over all subscribers.
    var ownerStreams: [String: Set<UInt64>] = [:]
    var cache: [JobID: CachedJob] = [:]
    /// The last seq sent to dashboards, per job not yet ended, so a state is broadcast once.
    var dashboardSeqs: [JobID: Int] = [:]
    /// Jobs whose final state dashboards got, with when: a late second notice of it must not repeat it.
    /// Such a notice comes within milliseconds, so entries go after `endedMemoryMilliseconds`.
    var dashboardEnded: [JobID: Int64] = [:]
    static let endedMemoryMilliseconds: Int64 = 60_000
    /// Log followers with more log to send than one chunk: served one chunk each per round.
    var logBacklog: Set<UInt64> = []
    /// The most log one follower gets per round of the hub loop.
    static let logChunkBytes = 64 * 1024
    /// Log events read and encoded this round, shared by followers at the same offset.
    var logPieces: [LogPiece.Key: LogPiece] = [:]
    /// Log chunks asked of the reader, when reads are off thread.
    var logReads = LogReads()
    /// Jobs whose read failed, read again a second later.
    var jobRetries = ReadRetries()
    /// Each stream's next heartbeat, write deadline or token lapse: a round handles the streams due, never a pass over all.
    var timers = StreamTimers()
    /// The most streams' deadlines one round handles: streams parked together fall due together, and
    /// changes must not wait behind all their pings.
    static let deadlinesPerRound = 256
    /// The hub's clock (monotonic ms), read once after each wait: what its decisions take as `now`.
    private(set) var now = Clock.monotonicMilliseconds()
    private var nextToken: UInt64 = 2
    /// When `dashboardEnded` is next pruned.
    private var nextEndedPrune: Int64 = 0
    private var nextPoll: Int64 = 0
    /// Set by SIGTERM's drain: the short `retry:` that every stream, open or still arriving, ends with.
    private var drainRetry: (@Sendable () -> Int)?

    enum Command: Sendable {
        case park(ParkedStream)
        case drain(retry: @Sendable () -> Int)
        /// The reader's listing of the jobs not yet ended (of one owner, for owner streams), for the dashboards
        /// or owner streams `tokens` (registered before it was read).
        case snapshot(tokens: [UInt64], jobs: [DashboardSnapshot.Entry])
        /// Jobs the reader read for the hub, and those it could not read now.
        case jobsRead([HubReader.Read], unreadable: [JobID])
        /// A chunk of a job's log the reader read for the hub (nil: it could not be read).
        case logRead(LogPiece.Origin, LogRead?)
    }

    private static let inboxToken: UInt64 = 0
    private static let watcherToken: UInt64 = 1

    /// A hub reading from `store`; `log` receives one line per notable event.
    public init(store: any JobStore, urlPrefix: String, heartbeat: HeraldDuration, writeDeadline: HeraldDuration = .seconds(10),
                maxOutboxBytes: Int = 1 << 20, log: @escaping @Sendable (String) -> Void) throws {
        self.store = store
        self.urlPrefix = urlPrefix
        heartbeatMilliseconds = heartbeat.milliseconds
        writeDeadlineMilliseconds = writeDeadline.milliseconds
        self.maxOutboxBytes = maxOutboxBytes
        self.log = log
        readsOffThread = store.readsAreRoundTrips
        inboxSignal = try EventFD()
        epoll = try Epoll()
        watcher = try store.watch()
        try epoll.add(inboxSignal.fd, events: Epoll.readable, token: StreamHub.inboxToken)
        if let fd = watcher.fd { try epoll.add(FileDescriptor(rawValue: fd), events: Epoll.readable, token: StreamHub.watcherToken) }
        snapshotReader = HubReader(store: store, urlPrefix: urlPrefix, yieldsCPU: true) { [unowned self] in send($0) }
        // Changed jobs read from a database are every stream's news, not bulk work: read at the hub's priority.
        changeReader = HubReader(store: store, urlPrefix: urlPrefix, yieldsCPU: !readsOffThread) { [unowned self] in send($0) }
    }

    /// Starts the hub thread.
    public func start() {
        let thread = Thread { [self] in run() }
        thread.name = "herald-hub"
        thread.stackSize = 1 << 20
        thread.start()
        snapshotReader.start()
        changeReader.start()
    }

    /// Hands a stream to the hub (from any thread); its headers have not been written yet.
    public func park(_ stream: ParkedStream) {
        metrics.arrivingStreams.add(1, ordering: .sequentiallyConsistent)
        send(.park(stream))
    }

    /// Ends every open stream with a short `retry:` (SIGTERM), and every stream parked from now on.
    public func drain(retry: @escaping @Sendable () -> Int) { send(.drain(retry: retry)) }

    /// Waits until no stream is open or on its way to the hub, or until `deadline` (monotonic ms).
    public func waitUntilClosed(deadline: Int64) {
        while metrics.arrivingStreams.load(ordering: .sequentiallyConsistent) > 0
                || metrics.openStreams.load(ordering: .sequentiallyConsistent) > 0,
              Clock.monotonicMilliseconds() < deadline {
            Clock.sleep(milliseconds: 10)
        }
    }

    private func send(_ command: Command) {
        inbox.withLock { $0.append(command) }
        inboxSignal.signal()
    }

    // MARK: The loop

    private func run() {
        while true {
            // A log that grew since is read again next round: pieces are shared within one round only.
            logPieces.removeAll(keepingCapacity: true)
            logReads.newRound()
            now = Clock.monotonicMilliseconds()
            var wait: Int64 = 60_000
            if let deadline = timers.nextDeadline() { wait = min(wait, max(0, deadline - now)) }
            for retry in [logReads.retryAt, jobRetries.dueAt].compactMap({ $0 }) { wait = min(wait, max(0, retry - now)) }
            if watcher.fd == nil { wait = min(wait, max(0, nextPoll - now)) }
            if !logBacklog.isEmpty { wait = 0 }
            let ready = epoll.wait(timeoutMilliseconds: Int32(wait))
            now = Clock.monotonicMilliseconds()
            for (token, events) in ready {
                switch token {
                case StreamHub.inboxToken: takeCommands()
                case StreamHub.watcherToken: applyChanges()
                default:
                    guard let sub = subscribers[token] else { continue }
                    if events & (Epoll.hangUp | Epoll.peerHangUp | Epoll.error) != 0 {
                        metrics.clientsHungUp.add(1, ordering: .relaxed)
                        close(sub)
                    } else if events & Epoll.writable != 0 {
                        flush(sub)
                    }
                }
            }
            if watcher.fd == nil, now >= nextPoll {
                nextPoll = now + Int64(watcher.pollIntervalMilliseconds)
                applyChanges()
            }
            fireDeadlines()
            for id in logReads.dueRetries(now: now) { catchUpLogFollowers(of: id) }
            let unread = jobRetries.due(now: now)
            if !unread.isEmpty { read(changed: unread) }
            if !logBacklog.isEmpty { continueLogs() }
            for id in followers.endRound() { cache[id] = nil }
            if !dashboardEnded.isEmpty, now >= nextEndedPrune {
                nextEndedPrune = now + heartbeatMilliseconds
                dashboardEnded = dashboardEnded.filter { now - $0.value < StreamHub.endedMemoryMilliseconds }
            }
        }
    }

    /// Performs what the streams due now need: pings, dropping clients past the write deadline, ending streams whose read token lapsed.
    private func fireDeadlines() {
        for token in timers.popDue(now: now, limit: StreamHub.deadlinesPerRound) {
            guard let sub = subscribers[token] else { continue }
            switch sub.state.due(now: now) {
            case .nothing: break
            case .ping: write(sub, framed: sub.requestID == 1 ? StreamHub.sharedPing : StreamHub.frame(ServerSentEvents.ping, requestID: sub.requestID))
            case let .drop(blockedFor):
                metrics.slowClientsDropped.add(1, ordering: .relaxed)
                log("warning: dropped a stream whose client read nothing for \(blockedFor) ms")
                close(sub)
            // The client comes back after its `retry:` and must show a valid token again (herald.js renews it).
            case .endLapsed: end(sub, finalEvent: ": the read token expired\n\n")
            case .closeLapsed: close(sub)
            }
            if !sub.closed { timers.arm(token, at: sub.state.schedule.nextDeadline) }
        }
    }

    /// A ping framed for request id 1 (what nginx uses), shared by every such stream.
    private static let sharedPing = frame(ServerSentEvents.ping, requestID: 1)

    /// `text` as one FastCGI stdout record of request `requestID`.
    static func frame(_ text: String, requestID: UInt16) -> [UInt8] {
        var bytes: [UInt8] = []
        FastCGIRecord.appendStdout(Array(text.utf8), requestID: requestID, to: &bytes)
        return bytes
    }

    private func takeCommands() {
        inboxSignal.drain()
        let commands = inbox.withLock { commands in
            defer { commands.removeAll() }
            return commands
        }
        for command in commands {
            switch command {
            case let .park(stream): register(stream)
            case let .snapshot(tokens, jobs):
                for token in tokens {
                    guard let sub = subscribers[token], let snapshot = sub.snapshot else { continue }
                    sub.snapshot = nil
                    for entry in snapshot.missing(from: jobs) {
                        sub.pending[entry.id] = entry.event
                        // Newer than any broadcast of the job: a read taken before the listing but
                        // reported after it (the change reader is another thread) must not follow it.
                        if entry.seq > dashboardSeqs[entry.id] ?? 0 { sub.aheadOfBroadcast[entry.id] = entry.seq }
                    }
                    if !sub.isBlocked { catchUp(sub) }
                }
            case let .jobsRead(reads, unreadable):
                for read in reads { if let job = read.job { apply(job) } else { forget(read.id) } }
                for id in unreadable { jobRetries.failed(id, now: now) }
            case let .logRead(origin, read):
                // Unreadable now (the database is away): its followers ask again in a second, even if no notice comes
                // (an ended job's last chunk would otherwise wait for ever, and its stream never end).
                if logReads.arrived(origin, read, now: now) { catchUpLogFollowers(of: origin.job) }
            case let .drain(retry):
                drainRetry = retry
                for sub in Array(subscribers.values) {
                    guard !sub.ending else { continue }
                    // Past a blocked outbox nothing reaches the client in time: close it now.
                    if sub.isBlocked { close(sub); continue }
                    end(sub, finalEvent: ServerSentEvents.retry(milliseconds: retry()))
                }
            }
        }
    }

    private func register(_ stream: ParkedStream) {
        let token = nextToken
        nextToken += 1
        // The token's lapse, read on the wall clock as tokens are, is timed on the hub's clock from now on.
        let lapseAt = stream.authorizedUntil.map { now + min(max(0, $0 - Clock.wallMilliseconds()), 1 << 50) }
        let schedule = StreamSchedule(now: now, heartbeat: heartbeatMilliseconds, writeDeadline: writeDeadlineMilliseconds, lapseAt: lapseAt)
        let sub = Subscriber(token: token, stream: stream, schedule: schedule)
        do {
            try sub.fd.setNonBlocking()
            try epoll.add(sub.fd, events: Epoll.peerHangUp, token: token)
        } catch {
            log("error: cannot park a stream: \(error)")
            sub.fd.close()
            metrics.arrivingStreams.subtract(1, ordering: .sequentiallyConsistent)
            return
        }
        subscribers[token] = sub
        timers.arm(token, at: schedule.nextDeadline)
        // Counted open before it stops counting as arriving (never both 0 for waitUntilClosed), and both
        // before a byte is written: a client that reads this stream's headers sees it counted once.
        metrics.openStreams.add(1, ordering: .sequentiallyConsistent)
        metrics.arrivingStreams.subtract(1, ordering: .sequentiallyConsistent)
        if let drainRetry {
            end(sub, head: true, finalEvent: ServerSentEvents.retry(milliseconds: drainRetry()))
            return
        }
        write(sub, text: "Status: 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-store\r\n"
            + "X-Accel-Buffering: no\r\n\r\n" + ServerSentEvents.retry(milliseconds: stream.retryMilliseconds))
        // The client left before it was parked: close() ran, and nothing may list the stream again.
        guard !sub.closed else { return }
        var gone: [JobID] = []
        followers.add(sub, token: token, jobs: sub.jobIDs)
        let unread = sub.jobIDs.filter { cache[$0] == nil }
        if readsOffThread {
            // A round trip per new stream would hold every stream of the node (a burst of 1,000 connections: 1,000
            // in a row): the reader reads them, and their states reach the stream as any change does.
            if !unread.isEmpty { changeReader.read(Dictionary(unread.map { ($0, true) }, uniquingKeysWith: { a, _ in a }), endedBefore: .max) }
        } else {
            for id in unread {
                do {
                    if let job = try store.job(id) { cache[id] = CachedJob(job, urlPrefix: urlPrefix) } else { gone.append(id) }
                } catch { jobRetries.failed(id, now: now) }
            }
        }
        // Removed since the API found it: the stream would wait for ever.
        for id in gone { forget(id) }
        if sub.ending { return }
        // Registered before its snapshot is read: a change after the listing is sent as any
        // change is, and one before it is in the listing (merged by seq when both arrive).
        switch sub.target {
        case .dashboard:
            dashboards.insert(token)
            sub.snapshot = DashboardSnapshot()
            snapshotReader.snapshot(for: token, owner: nil)
        case let .owner(owner):
            ownerStreams[owner, default: []].insert(token)
            sub.snapshot = DashboardSnapshot()
            snapshotReader.snapshot(for: token, owner: owner)
        case .job, .jobs: break
        }
        catchUp(sub)
    }
}
