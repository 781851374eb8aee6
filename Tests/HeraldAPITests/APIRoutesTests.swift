import HeraldAPI
import HeraldCore
@testable import HeraldStore
import HeraldStreams
import Testing

@Suite struct APIRoutesTests {
    @Test func submitAnswers201WithLocationAndTheQueuedJob() throws {
        let f = try APIFixture()
        let r = f.response("POST", "/jobs", body: #"{"kind":"report","params":{"month":"2026-10","n":12}}"#)
        #expect(r.status == 201)
        let job = try #require(r.json)
        let id = try #require(job["id"]?.stringValue)
        #expect(r.header("Location") == "/jobs/\(id)")
        #expect(job["state"]?.stringValue == "queued")
        #expect(job["params"]?["n"] == .string("12"))
        #expect(job["links"]?["events"]?.stringValue == "/jobs/\(id)/events")
        #expect(try f.store.job(JobID(id)!)?.state == .queued)
    }

    @Test func bodyOverTheLimitIsRefusedBeforeItIsRead() throws {
        let f = try APIFixture()
        let sent = f.send("POST", "/jobs", body: "{}", contentLength: "5000")
        guard case let .response(r) = sent.answer else { Issue.record("no response"); return }
        #expect(r.status == 413)
        #expect(r.errorCode == "body_too_large")
        #expect(!sent.bodyRead)
    }

    @Test func nonJSONContentTypeIs415() throws {
        let f = try APIFixture()
        guard case let .response(r) = f.send("POST", "/jobs", body: "kind=demo", contentType: "application/x-www-form-urlencoded").answer else { return }
        #expect(r.status == 415)
    }

    @Test func theMediaTypeIsCaseInsensitive() throws {
        let f = try APIFixture()
        let sent = f.send("POST", "/jobs", body: #"{"kind":"demo"}"#, contentType: "Application/JSON; charset=UTF-8")
        guard case let .response(r) = sent.answer else { Issue.record("no response"); return }
        #expect(r.status == 201)
    }

    @Test func aPostWithoutABodyIsBadJSONNotABadLength() throws {
        let f = try APIFixture()
        // nginx's fastcgi_params sends CONTENT_LENGTH empty when there is no body.
        guard case let .response(r) = f.send("POST", "/jobs", contentLength: "").answer else { Issue.record("no response"); return }
        #expect(r.status == 400)
        #expect(r.errorCode == "bad_json")
    }

    @Test(arguments: ["", "{", "[1]", #"{"kind": 5}"#, "{\"kind\":\"demo\"}garbage", "\u{FEFF}{}"])
    func malformedBodiesAre400(_ body: String) throws {
        let f = try APIFixture()
        let r = f.response("POST", "/jobs", body: body)
        #expect(r.status == 400)
    }

    @Test(arguments: [
        (#"{"kind":"nope"}"#, "unknown_kind"),
        (#"{"kind":"report","params":{"year":"2026"}}"#, "invalid_params"),
        (#"{"kind":"report","params":{"n":"12\n"}}"#, "invalid_params"),
        (#"{"kind":"report","params":{"n":null}}"#, "invalid_params"),
        (#"{"kind":"report","params":{"n":[1]}}"#, "invalid_params"),
        (#"{"kind":"demo","params":{"steps":0}}"#, "invalid_params"),
        (#"{"kind":"demo","params":{"interval_ms":60001}}"#, "invalid_params"),
    ])
    func refusedKindsAndParamsAre422(_ body: String, _ code: String) throws {
        let f = try APIFixture()
        let r = f.response("POST", "/jobs", body: body)
        #expect(r.status == 422)
        #expect(r.errorCode == code)
    }

    @Test func submitterRoutesNeedATokenWhenAnonymousIsOff() throws {
        let f = try APIFixture(anonymous: false, tokens: "s3cret\n")
        let refused = f.response("POST", "/jobs", body: #"{"kind":"demo"}"#)
        #expect(refused.status == 401)
        #expect(refused.header("WWW-Authenticate")?.hasPrefix("Bearer") == true)
        #expect(f.response("POST", "/jobs", body: #"{"kind":"demo"}"#, headers: ["AUTHORIZATION": "Bearer s3cret"]).status == 201)
        #expect(f.response("GET", "/jobs", headers: ["AUTHORIZATION": "Bearer s3cret"]).status == 200)
        #expect(f.response("GET", "/jobs").status == 401)
        guard case .stream(.dashboard, _, _) = f.send("GET", "/jobs/events", headers: ["AUTHORIZATION": "Bearer s3cret"]).answer else {
            Issue.record("the dashboard stream with a token should open")
            return
        }
        #expect(f.response("GET", "/jobs/events").status == 401)
    }

    @Test func wrongMethodIs405WithAllow() throws {
        let f = try APIFixture()
        let r = f.response("DELETE", "/jobs")
        #expect(r.status == 405)
        #expect(r.header("Allow") == "GET, POST")
    }

    @Test(arguments: ["/jobs/xyz", "/jobs/..%2F..%2Fetc", "/jobs/01M8968C9WRS5AW3M5ME29ZDQM", "/jobs/01m8968c9wrs5aw3m5me29zdqm", "/nope"])
    func unknownJobsAndRoutesAre404(_ uri: String) throws {
        let f = try APIFixture()
        let r = f.response("GET", uri)
        #expect(r.status == 404)
        let message = r.json?["error"]?["message"]?.stringValue ?? ""
        #expect(!message.contains(f.root))
    }

    @Test func listIsNewestFirstWithNext() throws {
        let f = try APIFixture()
        let ids = try (0..<3).map { _ in try f.submitDemo().id }
        let page = try #require(f.response("GET", "/jobs?limit=2").json)
        guard case let .array(jobs)? = page["jobs"] else { Issue.record("no jobs array"); return }
        #expect(jobs.compactMap { $0["id"]?.stringValue } == [ids[2].text, ids[1].text])
        #expect(page["next"]?.stringValue == ids[1].text)
        let rest = try #require(f.response("GET", "/jobs?limit=2&before=\(ids[1])").json)
        guard case let .array(more)? = rest["jobs"] else { return }
        #expect(more.compactMap { $0["id"]?.stringValue } == [ids[0].text])
        #expect(rest["next"] == .null)
    }

    /// Jobs submitted within one millisecond list in the order they were submitted: the list is newest first
    /// and the runner claims oldest first, both by ID (the random part used to order same-millisecond IDs).
    @Test func jobsSubmittedInOneBurstListInSubmitOrder() throws {
        let f = try APIFixture()
        let ids = try (0..<40).map { _ in try f.submitDemo().id.text }
        let page = try #require(f.response("GET", "/jobs?limit=40").json)
        guard case let .array(jobs)? = page["jobs"] else { Issue.record("no jobs array"); return }
        #expect(jobs.compactMap { $0["id"]?.stringValue } == ids.reversed())
    }

    @Test(arguments: ["limit=0", "limit=501", "limit=x", "state=done", "before=nope", "a=%zz"])
    func badQueriesAre400(_ query: String) throws {
        let f = try APIFixture()
        #expect(f.response("GET", "/jobs?\(query)").status == 400)
    }

    @Test func cancelIs202ThenTheRunnerEndsItThen409() throws {
        let f = try APIFixture()
        let job = try f.submitDemo()
        #expect(f.response("POST", "/jobs/\(job.id)/cancel").status == 202)
        #expect(f.response("POST", "/jobs/\(job.id)/cancel").status == 202)
        _ = try f.store.ingest()
        #expect(try f.store.cancelRequestedQueuedJobs(now: Timestamp(milliseconds: 1)).count == 1)
        let r = f.response("POST", "/jobs/\(job.id)/cancel")
        #expect(r.status == 409)
        #expect(r.errorCode == "already_ended")
    }

    @Test func logAnswersRawBytesFromAnOffset() throws {
        let f = try APIFixture()
        let job = try f.submitDemo()
        try "line one\r\nline two\n".write(toFile: f.store.logPath(job.id), atomically: true, encoding: .utf8)
        let r = f.response("GET", "/jobs/\(job.id)/log?offset=5")
        #expect(r.status == 200)
        #expect(String(decoding: r.body, as: UTF8.self) == "one\r\nline two\n")
        #expect(f.response("GET", "/jobs/\(job.id)/log?offset=-1").status == 400)
    }

    @Test func healthAndMetricsReportCounts() throws {
        let f = try APIFixture()
        _ = try f.submitDemo()
        let health = try #require(f.response("GET", "/healthz").json)
        #expect(health["ok"] == .bool(true))
        #expect(health["jobs"]?["queued"]?.intValue == 1)
        let metrics = String(decoding: f.response("GET", "/metrics").body, as: UTF8.self)
        #expect(metrics.contains("herald_open_streams 0"))
        #expect(metrics.contains(#"herald_requests_total{route="submit",status="201"} 1"#))
        #expect(metrics.contains(#"herald_jobs{state="queued"} 1"#))
    }
}
