import Testing
@testable import HeraldCore

@Suite struct JobTests {
    typealias F = Fixture

    @Test func jsonHasEveryFieldInOrder() throws {
        let job = F.running()
        let json = job.json(urlPrefix: "/jobs")
        guard case let .object(members) = json else { Issue.record("not an object"); return }
        #expect(members.map(\.0) == [
            "id", "kind", "state", "progress", "message", "params", "owner", "created_at", "started_at", "finished_at",
            "updated_at", "attempt", "exit_code", "error", "result", "seq", "links",
        ])
        #expect(json["id"] == .string(F.id.text))
        #expect(json["state"] == .string("running"))
        #expect(json["progress"] == .number("0.0"))
        #expect(json["message"] == .null)
        #expect(json["params"] == .object([("month", .string("2026-10"))]))
        #expect(json["owner"] == .null)
        #expect(json["created_at"] == .string("2025-11-25T10:00:00.123Z"))
        #expect(json["started_at"] == .string("2025-11-25T10:00:00.133Z"))
        #expect(json["finished_at"] == .null)
        #expect(json["attempt"] == .number("1"))
        #expect(json["exit_code"] == .null)
        #expect(json["error"] == .null)
        #expect(json["result"] == .null)
        #expect(json["seq"] == .number("2"))
        let base = "/jobs/\(F.id.text)"
        #expect(json["links"] == .object([
            ("self", .string(base)), ("events", .string(base + "/events")),
            ("log", .string(base + "/log")), ("cancel", .string(base + "/cancel")),
        ]))
    }

    @Test func theEncodedTextIsByteForByteAsItWas() throws {
        // A status file's exact bytes (the text of the String encoder before issue 11's byte encoder).
        var job = F.running()
        job.state = .failed
        job.progress = 37.5
        job.message = "say \"hi\"\\ \n\t\u{01} \u{2028} Zürich €"
        job.params = ["b": "2", "a": "x\u{2029}"]
        job.owner = "ana"
        job.finishedAt = F.at(86_400_000 * 40 + 1)
        job.updatedAt = F.at(-1)
        job.attempt = 3
        job.exitCode = -1
        job.error = JobError(.exitStatus, "exit 1 \"bad\"")
        job.result = .object([("n", .number("1.50")), ("ok", .bool(true)), ("list", .array([.null, .string("é")]))])
        job.seq = 1234
        let expected = "{\"id\":\"\(F.id.text)\",\"kind\":\"report\",\"state\":\"failed\",\"progress\":37.5,"
            + "\"message\":\"say \\\"hi\\\"\\\\ \\n\\t\\u0001 \\u2028 Zürich €\",\"params\":{\"a\":\"x\\u2029\",\"b\":\"2\"},"
            + "\"owner\":\"ana\",\"created_at\":\"2025-11-25T10:00:00.123Z\",\"started_at\":\"2025-11-25T10:00:00.133Z\","
            + "\"finished_at\":\"2026-01-04T10:00:00.124Z\",\"updated_at\":\"2025-11-25T10:00:00.122Z\",\"attempt\":3,"
            + "\"exit_code\":-1,\"error\":{\"code\":\"exit_status\",\"message\":\"exit 1 \\\"bad\\\"\"},"
            + "\"result\":{\"n\":1.50,\"ok\":true,\"list\":[null,\"é\"]},\"seq\":1234}"
        #expect(job.json(urlPrefix: nil).text == expected)
        #expect(job.json(urlPrefix: nil).bytes == Array(expected.utf8))
    }

    @Test func withoutPrefixThereAreNoLinks() {
        #expect(F.queued().json(urlPrefix: nil)["links"] == nil)
        #expect(F.queued().json(urlPrefix: "/api/jobs")["links"]?["self"] == .string("/api/jobs/\(F.id.text)"))
    }

    @Test func progressIsWrittenAsADouble() throws {
        let job = try #require(F.running().applying(.report(ProgressReport(progress: 42, message: "rendering page 4")), at: F.at(20), retries: 0))
        let text = job.json(urlPrefix: nil).text
        #expect(text.contains("\"progress\":42.0"))
        #expect(text.contains("\"message\":\"rendering page 4\""))
    }

    @Test func errorIsAnObject() throws {
        let failed = try #require(F.running().applying(.aborted(JobError(.timeout, "took over 30m")), at: F.at(20), retries: 0))
        #expect(failed.json(urlPrefix: nil)["error"] == .object([("code", .string("timeout")), ("message", .string("took over 30m"))]))
    }

    @Test func paramsAreSortedByName() {
        let job = Job(id: F.id, kind: "k", params: ["b": "2", "a": "1", "c": "3"], now: F.t0)
        #expect(job.json(urlPrefix: nil)["params"]?.text == #"{"a":"1","b":"2","c":"3"}"#)
    }

    @Test func jsonRoundTripThroughText() throws {
        var job = F.running()
        job = job.applying(.report(ProgressReport(progress: 42.5, message: "line \"one\"\n", result: .object([("n", .number("1.50"))]))), at: F.at(20), retries: 0)!
        let states: [Job] = [
            F.queued(), F.running(), job,
            job.applying(.exited(status: 0), at: F.at(30), retries: 0)!,
            job.applying(.exited(status: 7), at: F.at(30), retries: 0)!,
            job.applying(.cancel, at: F.at(30), retries: 0)!,
            job.applying(.exited(status: 7), at: F.at(30), retries: 1)!,
        ]
        for original in states {
            for prefix in [nil, "/jobs"] as [String?] {
                let parsed = try JSON.parse(original.json(urlPrefix: prefix).text)
                let back = try #require(Job(json: parsed))
                #expect(back == original)
            }
        }
    }

    @Test func incompleteJSONIsRefused() throws {
        let json = F.running().json(urlPrefix: nil)
        guard case let .object(members) = json else { return }
        for required in ["id", "kind", "state", "progress", "created_at", "updated_at", "attempt", "seq", "params"] {
            let without = JSON.object(members.filter { $0.0 != required })
            #expect(Job(json: without) == nil, "without \(required)")
        }
        var bad = members
        bad[0] = ("id", .string("../etc"))
        #expect(Job(json: .object(bad)) == nil)
        bad = members
        bad[2] = ("state", .string("paused"))
        #expect(Job(json: .object(bad)) == nil)
        bad = members
        bad[5] = ("params", .object([("a", .number("1"))]))
        #expect(Job(json: .object(bad)) == nil)
        #expect(Job(json: .array([])) == nil)
    }
}

@Suite struct JobOwnerTests {
    @Test(arguments: ["u", "user-42", "alice@example.com", "tenant:7.user_3", String(repeating: "a", count: 128)])
    func validOwners(_ owner: String) {
        #expect(JobOwner.isValid(owner))
    }

    @Test(arguments: ["", "a b", "ä", "a/b", "x\n", "a,b", "<script>", String(repeating: "a", count: 129)])
    func invalidOwners(_ owner: String) {
        #expect(!JobOwner.isValid(owner))
    }

    @Test func anOwnerSurvivesTheStatusFile() throws {
        var job = Fixture.running()
        job.owner = "user-42"
        let back = try #require(Job(json: job.json(urlPrefix: nil)))
        #expect(back.owner == "user-42")
        #expect(job.json(urlPrefix: "/jobs")["owner"] == .string("user-42"))
    }

    @Test func cookieValues() {
        #expect(Cookie.value(named: "herald_token", in: "a=1; herald_token=abc.def.ghi; b=2") == "abc.def.ghi")
        #expect(Cookie.value(named: "herald_token", in: "herald_token=\"q\"") == "q")
        #expect(Cookie.value(named: "herald_token", in: "xherald_token=1; herald_tokens=2") == nil)
        #expect(Cookie.value(named: "herald_token", in: nil) == nil)
        #expect(Cookie.value(named: "herald_token", in: "herald_token=a; herald_token=b") == "a")
    }
}
