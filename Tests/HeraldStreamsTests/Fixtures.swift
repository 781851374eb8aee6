import Foundation
import Glibc
import HeraldCore
import HeraldPOSIX
import HeraldStore
import HeraldStreams
import Synchronization

/// An ID for test job `n` (distinct for every n below 32^6).
func testID(_ n: Int) -> JobID {
    let alphabet = Array("0123456789abcdefghjkmnpqrstvwxyz")
    let tail = (0..<6).map { String(alphabet[(n >> (5 * $0)) & 31]) }.joined()
    return JobID("01j0000000000000000000" + String(tail.prefix(4)))!
}

/// A job in `state` at `seq`.
func testJob(_ id: JobID, _ state: JobState = .running, seq: Int = 2, finishedAt: Timestamp? = nil) -> Job {
    var job = Job(id: id, kind: "demo", params: [:], now: Timestamp(milliseconds: Clock.wallMilliseconds()))
    job.state = state
    job.seq = seq
    job.finishedAt = finishedAt ?? (state.isTerminal ? job.updatedAt : nil)
    return job
}

/// A store in memory whose job reads take as long as the test says, with a watcher the test fires by hand.
final class SlowStore: JobStore, @unchecked Sendable {
    let jobsByID = Mutex<[JobID: Job]>([:])
    /// How long each `job(_:)` takes, in microseconds (a file read and decode).
    let readMicroseconds = Atomic<Int>(0)
    let reads = Atomic<Int>(0)
    let logs = Mutex<[JobID: [UInt8]]>([:])
    let watcher = ManualWatcher()
    /// Whether the hub should take its reads for database round trips.
    let readsAreRoundTrips: Bool

    init(readsAreRoundTrips: Bool = false) { self.readsAreRoundTrips = readsAreRoundTrips }

    let keys = Mutex<[String: (body: String, id: JobID)]>([:])
    /// The next read of each of these jobs takes the job as it is, then waits for `heldRelease` before
    /// returning it (a reader thread descheduled between its read and its report).
    let held = Mutex<Set<JobID>>([])
    /// Whether the next log read is held likewise.
    let logHeld = Mutex<Bool>(false)
    /// How many of the next log reads fail as with the database away.
    let logFailures = Atomic<Int>(0)
    /// How many of the next job reads fail likewise.
    let jobFailures = Atomic<Int>(0)
    let heldRead = DispatchSemaphore(value: 0)
    let heldRelease = DispatchSemaphore(value: 0)

    func submit(_ job: Job) throws(StoreError) { jobsByID.withLock { $0[job.id] = job } }
    func submit(_ job: Job, idempotency record: IdempotencyRecord) throws(StoreError) -> IdempotentSubmit {
        let first = keys.withLock { keys -> (body: String, id: JobID)? in
            if let first = keys[record.keyHash] { return first }
            keys[record.keyHash] = (record.bodyHash, job.id)
            return nil
        }
        guard let first else {
            try submit(job)
            return .created(job)
        }
        guard first.body == record.bodyHash else { return .keyReused }
        return try self.job(first.id).map(IdempotentSubmit.repeated) ?? .keyReused
    }
    func job(_ id: JobID) throws(StoreError) -> Job? {
        reads.add(1, ordering: .relaxed)
        if jobFailures.load(ordering: .relaxed) > 0 {
            jobFailures.subtract(1, ordering: .relaxed)
            throw .unavailable("the test's database is away")
        }
        let delay = readMicroseconds.load(ordering: .relaxed)
        if delay > 0 { usleep(UInt32(delay)) }
        let job = jobsByID.withLock { $0[id] }
        if held.withLock({ $0.remove(id) != nil }) {
            heldRead.signal()
            heldRelease.wait()
        }
        return job
    }
    func jobs(_ filter: JobFilter) throws(StoreError) -> [Job] {
        jobsByID.withLock { Array($0.values) }.filter { filter.admits(state: $0.state, kind: $0.kind, owner: $0.owner) }
    }
    func jobCounts() throws(StoreError) -> [JobState: Int] { [:] }
    func requestCancel(_ id: JobID) throws(StoreError) {}
    func log(_ id: JobID, from offset: Int, maxBytes: Int) throws(StoreError) -> LogRead {
        if logFailures.load(ordering: .relaxed) > 0 {
            logFailures.subtract(1, ordering: .relaxed)
            throw .unavailable("the test's database is away")
        }
        let log = logs.withLock { $0[id] ?? [] }
        let bytes = Array(log.dropFirst(offset).prefix(maxBytes))
        if logHeld.withLock({ held in defer { held = false }; return held }) {
            heldRead.signal()
            heldRelease.wait()
        }
        return LogRead(bytes: bytes, atEnd: offset + bytes.count >= log.count)
    }
    func watch() throws(StoreError) -> any StoreWatcher { watcher }
}

/// A hub on `store`, started, logging nothing.
func startedHub(on store: some JobStore, heartbeat: HeraldDuration = .seconds(60)) throws -> StreamHub {
    let hub = try StreamHub(store: store, urlPrefix: "/jobs", heartbeat: heartbeat, log: { _ in })
    hub.start()
    return hub
}

/// A polled watcher reporting whatever the test queued.
final class ManualWatcher: StoreWatcher, @unchecked Sendable {
    let queued = Mutex<[StoreChange]>([])
    var fd: Int32? { nil }
    var pollIntervalMilliseconds: Int { 10 }
    func changes() throws(StoreError) -> [StoreChange] { queued.withLock { q in defer { q = [] }; return q } }
}

/// The client end of a parked stream: what the hub wrote, read as FastCGI stdout text.
final class TestClient {
    let fd: Int32
    private(set) var text = ""
    /// `event: status` blocks received (each arrives in one FastCGI record), and when the last one came.
    private(set) var statusEvents = 0
    private(set) var lastStatusAt = Date.distantPast
    private var raw: [UInt8] = []

    /// A socket pair: one end parked in `hub` as a stream following `target`, the other kept here.
    init(hub: StreamHub, target: StreamTarget, authorizedUntil: Int64? = nil) {
        // As herald-fcgi does: the hub writing to a client that left must get EPIPE, not kill the test process.
        signal(SIGPIPE, SIG_IGN)
        var fds: [Int32] = [0, 0]
        // Close-on-exec, as every descriptor herald opens: a child another test spawns meanwhile (the
        // PostgreSQL test cluster, started by system(3), lives until the process exits) must not keep the
        // hub's end open, or the client never sees the hub close it.
        precondition(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0)
        fd = fds[0]
        hub.park(ParkedStream(fd: fds[1], requestID: 1, target: target, retryMilliseconds: 1000, authorizedUntil: authorizedUntil))
    }

    deinit { Glibc.close(fd) }

    /// Whether the hub ended the response (FastCGI END_REQUEST seen) and closed the connection.
    private(set) var ended = false

    /// Reads until `done(self)` or `seconds` pass; returns whether `done` held.
    func read(within seconds: Double, until done: (TestClient) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while !done(self) {
            // Past the deadline one last look without waiting: on a starved machine this thread may
            // wake after the deadline with the awaited bytes already there.
            let left = max(0, deadline.timeIntervalSinceNow)
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, Int32(left * 1000)) > 0 else {
                if left == 0 { return false }
                continue
            }
            var buffer = [UInt8](repeating: 0, count: 65536)
            let n = Glibc.read(fd, &buffer, buffer.count)
            if n <= 0 {
                ended = true
                return done(self)
            }
            raw += buffer[0..<n]
            let received = TestClient.stdout(&raw)
            let events = received.components(separatedBy: "event: status\n").count - 1
            if events > 0 { lastStatusAt = Date() }
            statusEvents += events
            text += received
        }
        return true
    }

    /// Takes the FastCGI stdout content of the complete records at the start of `raw`.
    private static func stdout(_ raw: inout [UInt8]) -> String {
        var out: [UInt8] = []
        while raw.count >= 8 {
            let length = Int(raw[4]) << 8 | Int(raw[5]), padding = Int(raw[6])
            guard raw.count >= 8 + length + padding else { break }
            if raw[1] == 6 { out += raw[8..<(8 + length)] }  // FCGI_STDOUT
            raw.removeFirst(8 + length + padding)
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Waits until `condition` holds or `seconds` pass.
func eventually(within seconds: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while !condition() {
        if Date() > deadline { return false }
        usleep(5000)
    }
    return true
}
