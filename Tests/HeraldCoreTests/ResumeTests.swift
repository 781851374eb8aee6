import Testing
@testable import HeraldCore

@Suite struct ResumeTests {
    typealias F = Fixture

    // MARK: Cursor

    @Test(arguments: [
        ("7", 7, nil as Int?), ("7.1024", 7, 1024), ("0", 0, nil), ("0.0", 0, 0), ("123456789012345678", 123_456_789_012_345_678, nil),
        ("007", 7, nil),
    ])
    func cursorParses(text: String, seq: Int, offset: Int?) throws {
        let cursor = try #require(StreamCursor(eventID: text))
        #expect(cursor.seq == seq)
        #expect(cursor.logOffset == offset)
    }

    @Test(arguments: [
        "", "x", "7.", ".7", "7.x", "-1", "+1", "7.-1", "7.1.2", "1234567890123456789", "99999999999999999999999",
        "7 ", " 7", "7,1", "1e3", "٣", "7\n", "0x10",
    ])
    func malformedCursorIsNil(text: String) {
        #expect(StreamCursor(eventID: text) == nil)
    }

    @Test func cursorEventIDRoundTrip() {
        #expect(StreamCursor(seq: 7).eventID == "7")
        #expect(StreamCursor(seq: 7, logOffset: 1024).eventID == "7.1024")
        for c in [StreamCursor(seq: 1), StreamCursor(seq: 42, logOffset: 0), StreamCursor(seq: 3, logOffset: 99_999)] {
            #expect(StreamCursor(eventID: c.eventID) == c)
        }
    }

    @Test func multiCursor() throws {
        let c = try #require(MultiStreamCursor(eventID: "7_0_12", jobCount: 3))
        #expect(c.seqs == [7, 0, 12])
        #expect(c.eventID == "7_0_12")
        #expect(MultiStreamCursor(eventID: c.eventID, jobCount: 3) == c)
        #expect(MultiStreamCursor(seqs: [5]).eventID == "5")
        #expect(MultiStreamCursor(eventID: "5", jobCount: 1)?.seqs == [5])
    }

    @Test(arguments: [
        ("7_0_12", 2), ("7_0_12", 4), ("7_0", 3), ("", 1), ("", 0), ("7__12", 3), ("7_x_12", 3), ("7_0_", 3),
        ("7.1_0_12", 3), ("-1_0_0", 3), ("7,0,12", 3), ("1234567890123456789_1", 2),
    ])
    func malformedMultiCursorIsNil(text: String, count: Int) {
        #expect(MultiStreamCursor(eventID: text, jobCount: count) == nil)
    }

    // MARK: Plan

    static func job(seq: Int, state: JobState) -> Job {
        var job = F.queued()
        job.seq = seq
        job.state = state
        return job
    }

    @Test(arguments: JobState.allCases)
    func noCursorSendsTheStatus(state: JobState) {
        #expect(ResumePlan.plan(job: Self.job(seq: 7, state: state), cursor: nil) == .stream(sendStatus: true, logOffset: 0))
    }

    @Test(arguments: [JobState.succeeded, .failed, .canceled])
    func clientWithTheTerminalStatusIsFinished(state: JobState) {
        #expect(ResumePlan.plan(job: Self.job(seq: 7, state: state), cursor: StreamCursor(seq: 7)) == .finished)
        #expect(ResumePlan.plan(job: Self.job(seq: 7, state: state), cursor: StreamCursor(seq: 7, logOffset: 500)) == .finished)
    }

    @Test(arguments: [JobState.queued, .running])
    func clientWithTheCurrentStatusGetsNoStatus(state: JobState) {
        #expect(ResumePlan.plan(job: Self.job(seq: 7, state: state), cursor: StreamCursor(seq: 7)) == .stream(sendStatus: false, logOffset: 0))
        #expect(ResumePlan.plan(job: Self.job(seq: 7, state: state), cursor: StreamCursor(seq: 7, logOffset: 1024))
            == .stream(sendStatus: false, logOffset: 1024))
    }

    @Test(arguments: JobState.allCases)
    func olderCursorGetsTheStatus(state: JobState) {
        #expect(ResumePlan.plan(job: Self.job(seq: 7, state: state), cursor: StreamCursor(seq: 6)) == .stream(sendStatus: true, logOffset: 0))
        #expect(ResumePlan.plan(job: Self.job(seq: 7, state: state), cursor: StreamCursor(seq: 1, logOffset: 300))
            == .stream(sendStatus: true, logOffset: 300))
    }

    @Test(arguments: JobState.allCases)
    func cursorAheadOfTheJobIsTreatedAsNone(state: JobState) {
        let plan = ResumePlan.plan(job: Self.job(seq: 7, state: state), cursor: StreamCursor(seq: 8, logOffset: 4096))
        #expect(plan == .stream(sendStatus: true, logOffset: 0))
        #expect(plan == ResumePlan.plan(job: Self.job(seq: 7, state: state), cursor: nil))
    }

    @Test func malformedLastEventIDIsIgnored() {
        let job = Self.job(seq: 9, state: .succeeded)
        #expect(ResumePlan.plan(job: job, cursor: StreamCursor(eventID: "garbage")) == .stream(sendStatus: true, logOffset: 0))
        #expect(ResumePlan.plan(job: job, cursor: StreamCursor(eventID: "9")) == .finished)
    }
}
