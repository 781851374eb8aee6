import HeraldCore
@testable import HeraldStreams
import Testing

@Suite struct ReadRetriesTests {
    @Test func theJobsLeftOutOfAnAnswerAreTheUnreadOnesInTheOrderAsked() {
        let asked = (1...4).map(testID)
        let read: [(id: JobID, job: Job?)] = [(asked[2], nil), (asked[0], testJob(asked[0]))]
        #expect(ReadRetries.leftOut(asked, by: read) == [asked[1], asked[3]])
        #expect(ReadRetries.leftOut(asked[...0], by: read).isEmpty)
    }

    @Test func aFailedReadIsDueAfterTheDelayOnceAndAnotherFailureDoesNotPutItOff() {
        var retries = ReadRetries()
        retries.failed(testID(1), now: 1_000)
        retries.failed(testID(2), now: 1_500)
        #expect(retries.dueAt == 1_000 + ReadRetries.delayMilliseconds)
        #expect(retries.due(now: 1_999).isEmpty)
        #expect(retries.due(now: 2_000) == [testID(1), testID(2)])
        #expect(retries.dueAt == nil)
        #expect(retries.due(now: 5_000).isEmpty)
    }
}
