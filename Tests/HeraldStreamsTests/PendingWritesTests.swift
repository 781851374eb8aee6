@testable import HeraldStreams
import Testing

@Suite struct PendingWritesTests {
    /// What one write of at most `room` bytes takes from the front.
    func write(_ pending: inout PendingWrites, room: Int) -> (bytes: [UInt8], outcome: PendingWrites.Outcome) {
        var taken: [UInt8] = []
        let n = pending.withFirstBytes { bytes in
            taken = Array(bytes.prefix(room))
            return taken.count
        }
        return (taken, pending.didWrite(n))
    }

    @Test func bytesLeaveInOrderAcrossFramesAndShortWrites() {
        var pending = PendingWrites()
        pending.append([1, 2, 3])
        pending.append([])
        pending.append([4, 5])
        #expect(pending.count == 5)
        var out: [UInt8] = []
        var outcomes: [PendingWrites.Outcome] = []
        for room in [2, 0, 2, 5] {
            let (bytes, outcome) = write(&pending, room: room)
            out += bytes
            outcomes.append(outcome)
        }
        // One write never crosses a frame: [1, 2], nothing (socket full), [3], [4, 5].
        #expect(out == [1, 2, 3, 4, 5])
        #expect(outcomes == [.blocked, .blocked, .blocked, .drained])
        #expect(pending.isEmpty)
    }

    @Test func aDrainedQueueTakesNewFramesFromTheirStart() {
        var pending = PendingWrites()
        pending.append([1, 2, 3])
        #expect(write(&pending, room: 3).outcome == .drained)
        pending.append([7, 8])
        #expect(write(&pending, room: 1).bytes == [7])
        #expect(pending.count == 1)
        #expect(pending.removeAll() == 1)
        #expect(pending.isEmpty && write(&pending, room: 10).bytes.isEmpty)
    }
}
