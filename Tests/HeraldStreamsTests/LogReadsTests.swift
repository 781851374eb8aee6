import HeraldCore
import HeraldStore
@testable import HeraldStreams
import Testing

@Suite struct LogReadsTests {
    let origin = LogPiece.Origin(job: testID(1), offset: 10, seq: 3)
    let chunk = LogRead(bytes: Array("x\n".utf8), atEnd: true)

    @Test func aChunkIsAskedForOnceWhileOnItsWay() {
        var reads = LogReads()
        let first = reads.lookUp(origin), second = reads.lookUp(origin)
        let newer = reads.lookUp(LogPiece.Origin(job: testID(1), offset: 10, seq: 4))
        #expect(first == .ask)
        #expect(second == .waiting)
        #expect(newer == .ask, "a newer state asks again")
    }

    @Test func aChunkServesTheRoundItCameInOnly() {
        var reads = LogReads()
        _ = reads.lookUp(origin)
        let brought = reads.arrived(origin, chunk, now: 0)
        let sameRound = reads.lookUp(origin)
        reads.newRound()
        let nextRound = reads.lookUp(origin)
        #expect(brought)
        #expect(sameRound == .ready(chunk))
        #expect(nextRound == .ask, "the log may have grown since")
    }

    @Test func aFailedReadIsAskedAgainAfterTheRetryDelayNotBefore() {
        var reads = LogReads()
        _ = reads.lookUp(origin)
        let brought = reads.arrived(origin, nil, now: 5_000)
        #expect(!brought)
        #expect(reads.retryAt == 5_000 + ReadRetries.delayMilliseconds)
        let early = reads.dueRetries(now: 5_999)
        #expect(early.isEmpty)
        // A second failure later does not put off the first one's retry.
        let other = LogPiece.Origin(job: testID(2), offset: 0, seq: 1)
        _ = reads.lookUp(other)
        _ = reads.arrived(other, nil, now: 5_500)
        let due = reads.dueRetries(now: 6_000)
        #expect(due == [testID(1), testID(2)])
        #expect(reads.retryAt == nil)
        let later = reads.dueRetries(now: 9_000), again = reads.lookUp(origin)
        #expect(later.isEmpty)
        #expect(again == .ask, "no longer on its way")
    }
}
