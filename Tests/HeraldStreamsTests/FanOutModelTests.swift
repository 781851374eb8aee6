@testable import HeraldStreams
import Testing

/// One job's streams as the hub serves them (StreamState and StreamTimers, their decisions performed in
/// StreamHub's order), with each socket replaced by a buffer that its reader empties at a set rate, and
/// the clock by `now` (ms). No sockets, no threads: every run is exact and repeatable.
struct FanOutModel {
    struct Reader {
        var state: StreamState
        /// Bytes the socket holds for the reader (at most `capacity`); it reads `bytesPerMillisecond` of them a ms.
        var socket: [UInt8] = []
        let capacity: Int
        let bytesPerMillisecond: Int
        var read: [UInt8] = []
        /// The states it read whole, and when.
        var received: [(seq: Int, at: Int64)] = []
        var pings: [Int64] = []
        var droppedAt: Int64?
    }

    static let frameBytes = 100
    private(set) var now: Int64 = 0
    private(set) var readers: [Reader] = []
    private var timers = StreamTimers()
    /// The job's state as the hub last read it.
    private var latest = 0

    init(readers: [(capacity: Int, bytesPerMillisecond: Int)], heartbeat: Int64 = 60_000, writeDeadline: Int64 = 10_000) {
        for (capacity, rate) in readers {
            let schedule = StreamSchedule(now: now, heartbeat: heartbeat, writeDeadline: writeDeadline)
            self.readers.append(Reader(state: StreamState(seqs: [0], schedule: schedule), capacity: capacity, bytesPerMillisecond: rate))
            timers.arm(UInt64(self.readers.count - 1), at: schedule.nextDeadline)
        }
    }

    /// A status event carrying `seq` (0: a ping), `frameBytes` long.
    static func frame(_ seq: Int) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: seq >> (8 * $0)) } + Array(repeating: 0, count: frameBytes - 8)
    }

    /// The hub read the job at `seq` (StreamHub.apply): every reader is offered it.
    mutating func publish(_ seq: Int) {
        latest = seq
        for i in readers.indices { catchUp(i) }
    }

    /// Lets `milliseconds` pass, one at a time: readers read, drained sockets take the latest state, deadlines fire.
    mutating func run(_ milliseconds: Int64) {
        for _ in 0..<milliseconds {
            now += 1
            for i in readers.indices where readers[i].droppedAt == nil {
                read(i)
                // StreamHub.flush, on the socket's writability.
                if readers[i].state.isBlocked, readers[i].socket.count < readers[i].capacity {
                    writeOut(i)
                    if !readers[i].state.isBlocked { catchUp(i) }
                }
            }
            // StreamHub.fireDeadlines.
            for token in timers.popDue(now: now, limit: 256) {
                let i = Int(token)
                switch readers[i].state.due(now: now) {
                case .nothing: break
                case .ping:
                    readers[i].state.queue(FanOutModel.frame(0))
                    writeOut(i)
                case .drop, .closeLapsed, .endLapsed:
                    readers[i].droppedAt = now
                    continue
                }
                timers.arm(token, at: readers[i].state.schedule.nextDeadline)
            }
        }
    }

    /// StreamHub.catchUpJob.
    private mutating func catchUp(_ i: Int) {
        guard readers[i].droppedAt == nil, readers[i].state.takeStatus(0, seq: latest) else { return }
        readers[i].state.queue(FanOutModel.frame(latest))
        writeOut(i)
    }

    /// StreamHub.write and writeUnsent: writes until all is out or the socket is full, then arms the write deadline.
    private mutating func writeOut(_ i: Int) {
        let wasBlocked = readers[i].socket.count == readers[i].capacity
        while readers[i].state.isBlocked {
            let room = readers[i].capacity - readers[i].socket.count
            var written: [UInt8] = []
            _ = readers[i].state.unsent.withFirstBytes { bytes in
                written = Array(bytes.prefix(room))
                return written.count
            }
            readers[i].socket += written
            if readers[i].state.didWrite(written.count, now: now) == .drained || written.isEmpty { break }
        }
        if readers[i].state.isBlocked, !wasBlocked { timers.arm(UInt64(i), at: readers[i].state.schedule.nextDeadline) }
    }

    private mutating func read(_ i: Int) {
        let n = min(readers[i].socket.count, readers[i].bytesPerMillisecond)
        readers[i].read += readers[i].socket.prefix(n)
        readers[i].socket.removeFirst(n)
        while readers[i].read.count >= FanOutModel.frameBytes {
            let seq = (0..<8).reduce(0) { $0 | Int(readers[i].read[$1]) << (8 * $1) }
            readers[i].read.removeFirst(FanOutModel.frameBytes)
            if seq == 0 { readers[i].pings.append(now) } else { readers[i].received.append((seq, now)) }
        }
    }
}

/// A seeded generator (SplitMix64), so that a failing run can be repeated.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct FanOutModelTests {
    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func mergingNeverReordersAJobsStates(seed: UInt64) {
        var random = SeededGenerator(state: seed)
        // Sockets from smaller than one event to several, readers from stalled to fast.
        var model = FanOutModel(readers: (0..<6).map { _ in (Int.random(in: 30...400, using: &random), Int.random(in: 0...20, using: &random)) },
                                writeDeadline: 100_000)
        var newest = 0
        for _ in 0..<400 {
            // Mostly forward; now and then an older read reported late (the reader thread races the hub).
            let seq = Bool.random(using: &random) && newest > 3 ? newest - Int.random(in: 1...3, using: &random) : newest + Int.random(in: 1...3, using: &random)
            newest = max(newest, seq)
            model.publish(seq)
            model.run(Int64.random(in: 0...30, using: &random))
        }
        model.publish(newest)
        model.run(60_000)  // long enough for the slowest reader that reads at all
        for reader in model.readers {
            let seqs = reader.received.map(\.seq)
            #expect(zip(seqs, seqs.dropFirst()).allSatisfy { $0 < $1 }, "a state older than one already sent: \(seqs)")
            if reader.bytesPerMillisecond > 0 { #expect(seqs.last == newest, "a reader that reads ends with the latest state") }
        }
    }

    @Test func aSlowReaderNeverDelaysAnother() {
        // Reader 0 never reads, and its socket takes less than one event; reader 1 reads as events come.
        var model = FanOutModel(readers: [(capacity: 60, bytesPerMillisecond: 0), (capacity: 4096, bytesPerMillisecond: 4096)])
        for seq in 1...50 {
            model.publish(seq)
            model.run(100)
        }
        let fast = model.readers[1].received
        #expect(fast.map(\.seq) == Array(1...50))
        // Read 1 ms after each publish (the model's readers read once a ms), whatever reader 0 does.
        #expect(fast.enumerated().allSatisfy { $0.element.at == Int64($0.offset * 100 + 1) }, "\(fast.map(\.at))")
        // Reader 0 holds the rest of its first event and nothing more: later states merged, none queued.
        #expect(model.readers[0].received.isEmpty)
        #expect(model.readers[0].state.unsent.count == FanOutModel.frameBytes - 60)
    }

    @Test func theWriteDeadlineDropsAStalledReaderOnTheFakeClockAndNoOtherOne() {
        var model = FanOutModel(readers: [(capacity: 250, bytesPerMillisecond: 0), (capacity: 250, bytesPerMillisecond: 1)],
                                heartbeat: 60_000, writeDeadline: 10_000)
        model.publish(1)
        model.publish(2)
        model.publish(3)  // reader 0's socket is full from here (250 of 300 bytes): blocked at 0
        model.run(9_999)
        #expect(model.readers[0].droppedAt == nil)
        model.run(1)
        #expect(model.readers[0].droppedAt == 10_000)
        // Reader 1 reads a byte a ms: it is blocked on and off, but never for the whole deadline.
        for seq in 4...40 {
            model.publish(seq)
            model.run(500)
        }
        #expect(model.readers[1].droppedAt == nil)
        #expect(model.readers[1].received.last?.seq == 40)
    }

    @Test func heartbeatsFallDueOnTheFakeClockForEachStreamFromItsOwnStart() {
        var model = FanOutModel(readers: [(capacity: 4096, bytesPerMillisecond: 4096)], heartbeat: 1000)
        model.run(5000)
        #expect(model.readers[0].pings == [1001, 2001, 3001, 4001])
    }

    @Test(arguments: [7, 8, 9] as [UInt64])
    func everyStateLastingAHundredMillisecondsReachesAReaderWhoKeepsUp(seed: UInt64) {
        var random = SeededGenerator(state: seed)
        // A reader that takes an event in 20 ms, with room for one and a half in its socket; one beside it that never reads.
        var model = FanOutModel(readers: [(capacity: 150, bytesPerMillisecond: 5), (capacity: 150, bytesPerMillisecond: 0)],
                                writeDeadline: 1_000_000)
        var lasting: [Int] = []
        for seq in 1...300 {
            model.publish(seq)
            let lasts = Int64.random(in: 1...250, using: &random)
            if lasts >= 100 { lasting.append(seq) }
            model.run(lasts)
        }
        let seen = Set(model.readers[0].received.map(\.seq))
        #expect(lasting.count > 50)
        #expect(lasting.filter { !seen.contains($0) }.isEmpty, "states of 100 ms or more never read")
    }
}
