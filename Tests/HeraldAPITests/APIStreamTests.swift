import HeraldAPI
import HeraldCore
import HeraldStore
import HeraldStreams
import Testing

@Suite struct APIStreamTests {
    func finish(_ f: APIFixture, _ job: Job) throws -> Job {
        _ = try f.store.ingest()
        let claim = try #require(try f.store.claimNext(kinds: f.config.kinds, now: Timestamp(milliseconds: 2)))
        let done = try #require(claim.job.applying(.exited(status: 0), at: Timestamp(milliseconds: 3), retries: 0))
        try claim.finish(done)
        return done
    }

    @Test func firstConnectOpensAStreamWithJitteredRetry() throws {
        let f = try APIFixture()
        let job = try f.submitDemo()
        for _ in 0..<20 {
            guard case let .stream(.job(id, log, cursor), retry, _) = f.send("GET", "/jobs/\(job.id)/events?log=1").answer else {
                Issue.record("expected a stream")
                return
            }
            #expect(id == job.id && log && cursor == nil)
            #expect((2100...3900).contains(retry))  // 3 s ± 30%
        }
    }

    @Test func lastEventIDHeaderWinsOverTheQuery() throws {
        let f = try APIFixture()
        let job = try f.submitDemo()
        guard case let .stream(.job(_, _, cursor), _, _) = f.send("GET", "/jobs/\(job.id)/events?last_event_id=0", headers: ["LAST_EVENT_ID": "1"]).answer
        else { Issue.record("expected a stream"); return }
        #expect(cursor == StreamCursor(seq: 1))
    }

    @Test func aClientThatSawTheEndGets204() throws {
        let f = try APIFixture()
        let done = try finish(f, try f.submitDemo())
        #expect(f.response("GET", "/jobs/\(done.id)/events", headers: ["LAST_EVENT_ID": "\(done.seq)"]).status == 204)
        #expect(f.response("GET", "/jobs/\(done.id)/events?last_event_id=\(done.seq).40").status == 204)
        guard case .stream = f.send("GET", "/jobs/\(done.id)/events", headers: ["LAST_EVENT_ID": "\(done.seq - 1)"]).answer else {
            Issue.record("an older id must get the terminal status")
            return
        }
    }

    @Test(arguments: ["garbage", "99999", "-1", "1.2.3"])
    func malformedOrForeignIDsAreIgnored(_ lastEventID: String) throws {
        let f = try APIFixture()
        let done = try finish(f, try f.submitDemo())
        guard case let .stream(.job(_, _, cursor), _, _) = f.send("GET", "/jobs/\(done.id)/events", headers: ["LAST_EVENT_ID": lastEventID]).answer else {
            Issue.record("expected a stream")
            return
        }
        #expect(cursor == nil)
    }

    @Test func unknownJobStreamIs404() throws {
        let f = try APIFixture()
        #expect(f.response("GET", "/jobs/01m8968c9wrs5aw3m5me29zdqm/events").status == 404)
        #expect(f.response("GET", "/jobs/events?ids=01m8968c9wrs5aw3m5me29zdqm").status == 404)
        #expect(f.response("GET", "/jobs/events?ids=bad").status == 404)
    }

    @Test func multiStreamTakesUpTo64JobsAndEnds204() throws {
        let f = try APIFixture()
        let a = try finish(f, try f.submitDemo())
        let b = try f.submitDemo()
        guard case let .stream(.jobs(ids, nil), _, _) = f.send("GET", "/jobs/events?ids=\(a.id),\(b.id)").answer else {
            Issue.record("expected a multi-job stream")
            return
        }
        #expect(ids == [a.id, b.id])
        let tooMany = Array(repeating: a.id.text, count: 65).joined(separator: ",")
        #expect(f.response("GET", "/jobs/events?ids=\(tooMany)").status == 400)
        for empty in ["", "\(a.id),,\(b.id)", "\(a.id),"] {
            #expect(f.response("GET", "/jobs/events?ids=\(empty)").errorCode == "bad_query", "ids=\(empty)")
        }
        let doneB = try finish(f, b)
        #expect(f.response("GET", "/jobs/events?ids=\(a.id),\(b.id)", headers: ["LAST_EVENT_ID": "\(a.seq)_\(doneB.seq)"]).status == 204)
    }

    @Test func overCapacityAnswersALongRetryAndEnds() throws {
        let f = try APIFixture(maxStreams: 1)
        let job = try f.submitDemo()
        f.metrics.openStreams.store(1, ordering: .relaxed)
        let r = f.response("GET", "/jobs/\(job.id)/events")
        #expect(r.status == 200)
        #expect(r.header("Content-Type") == "text/event-stream; charset=utf-8")
        let text = String(decoding: r.body, as: UTF8.self)
        let retry = Int(text.dropFirst("retry: ".count).prefix { $0.isNumber }) ?? 0
        #expect(text.hasPrefix("retry: ") && (5000...15000).contains(retry))
    }
}
