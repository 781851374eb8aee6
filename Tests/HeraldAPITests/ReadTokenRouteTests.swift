import HeraldAPI
import HeraldCore
import HeraldPOSIX
import HeraldTokens
import Testing

/// Who may read what with read tokens (SPEC §9), at the API, without nginx.
@Suite struct ReadTokenRouteTests {
    static func token(_ members: [(String, JSON)], ttl: Int64 = 60) -> String {
        let now = Clock.wallMilliseconds() / 1000
        return ReadTokenSigner.sign(.object(members + [("exp", .int(Int(now + ttl)))]), secret: APIFixture.readSecret)
    }

    func submit(_ f: APIFixture, owner: String?) throws -> Job {
        let ownerJSON = owner.map { #","owner":"\#($0)""# } ?? ""
        let r = f.response("POST", "/jobs", body: #"{"kind":"demo","params":{}\#(ownerJSON)}"#, headers: ["AUTHORIZATION": "Bearer s3cret"])
        #expect(r.status == 201)
        return try #require(Job(json: try JSON.parse(r.body)))
    }

    @Test func ownerIsStoredShownAndFiltered() throws {
        let f = try APIFixture(anonymous: false, tokens: "s3cret\n")
        let mine = try submit(f, owner: "user-42")
        _ = try submit(f, owner: "user-7")
        _ = try submit(f, owner: nil)
        #expect(mine.owner == "user-42")
        #expect(f.response("GET", "/jobs/\(mine.id)").json?["owner"] == .string("user-42"))
        let listed = f.response("GET", "/jobs?owner=user-42", headers: ["AUTHORIZATION": "Bearer s3cret"]).json?["jobs"]
        guard case let .array(items)? = listed else { Issue.record("no list"); return }
        #expect(items.map { $0["id"] } == [.string(mine.id.text)])
        #expect(f.response("GET", "/jobs?owner=a%20b", headers: ["AUTHORIZATION": "Bearer s3cret"]).status == 400)
    }

    @Test(arguments: [#""""#, #""a b""#, "42", "[]", #""\#(String(repeating: "x", count: 129))""#])
    func aBadOwnerIs422(_ owner: String) throws {
        let f = try APIFixture()
        let r = f.response("POST", "/jobs", body: #"{"kind":"demo","params":{},"owner":\#(owner)}"#)
        #expect(r.status == 422 && r.errorCode == "invalid_owner")
    }

    @Test func requireReadTokenRefusesABareIdAndAcceptsCoveringTokens() throws {
        let f = try APIFixture(anonymous: true, tokens: "s3cret\n", readTokens: true, requireReadToken: true)
        let job = try submit(f, owner: "user-42")
        for path in ["/jobs/\(job.id)", "/jobs/\(job.id)/log", "/jobs/\(job.id)/events", "/jobs/events?ids=\(job.id)"] {
            let bare = f.response("GET", path)
            #expect(bare.status == 401 && bare.header("WWW-Authenticate")?.hasPrefix("Bearer") == true, "\(path)")
            let other = f.response("GET", path, headers: ["COOKIE": "herald_token=\(Self.token([("sub", .string("user-7"))]))"])
            #expect(other.status == 401, "\(path)")
            for headers in [["COOKIE": "a=b; herald_token=\(Self.token([("sub", .string("user-42"))]))"],
                            ["AUTHORIZATION": "Bearer \(Self.token([("jobs", .array([.string(job.id.text)]))]))"],
                            ["AUTHORIZATION": "Bearer s3cret"]] {
                let answer = f.send("GET", path, headers: headers).answer
                if case let .response(r) = answer { #expect(r.status == 200, "\(path) \(headers)") }
            }
            let query = f.send("GET", path + (path.contains("?") ? "&" : "?") + "token=\(Self.token([("all", .bool(true))]))").answer
            if case let .response(r) = query { #expect(r.status == 200, "\(path)") }
        }
    }

    @Test func withoutRequireReadTokenAnIdIsACapabilityAndTokensAreNotLookedAt() throws {
        let f = try APIFixture(readTokens: true)
        let job = try f.submitDemo()
        #expect(f.response("GET", "/jobs/\(job.id)").status == 200)
        #expect(f.response("GET", "/jobs/\(job.id)", headers: ["COOKIE": "herald_token=garbage"]).status == 200)
    }

    @Test func everyRefusalIs401NamingWhy() throws {
        let f = try APIFixture(anonymous: false, tokens: "s3cret\n", readTokens: true)
        let expired = Self.token([("all", .bool(true))], ttl: -60)
        let forged = ReadTokenSigner.sign(.object([("all", .bool(true)), ("exp", .int(4_000_000_000))]), secret: Array("x".utf8) + APIFixture.readSecret)
        let none = Base64URL.encode(Array(#"{"alg":"none"}"#.utf8)) + "." + Base64URL.encode(Array(#"{"all":true,"exp":4000000000}"#.utf8)) + "."
        for (token, word) in [(expired, "expired"), (forged, "signature"), (none, "algorithm"), ("abc", "malformed")] {
            for headers in [["AUTHORIZATION": "Bearer \(token)"], ["COOKIE": "herald_token=\(token)"]] {
                let r = f.response("GET", "/jobs/events", headers: headers)
                #expect(r.status == 401 && r.json?["error"]?["message"]?.stringValue?.contains(word) == true, "\(word): \(r.status)")
                #expect(r.header("WWW-Authenticate") == #"Bearer realm="herald", error="invalid_token""#)
            }
            let q = f.response("GET", "/jobs/events?token=\(token)")
            #expect(q.status == 401 && q.json?["error"]?["message"]?.stringValue?.contains(word) == true)
        }
    }

    @Test func theDashboardByToken() throws {
        let f = try APIFixture(anonymous: false, tokens: "s3cret\n", readTokens: true)
        guard case .stream(.dashboard, _, _) = f.send("GET", "/jobs/events?token=\(Self.token([("all", .bool(true))]))").answer else {
            Issue.record("an all token opens the dashboard")
            return
        }
        let jobsOnly = f.response("GET", "/jobs/events", headers: ["COOKIE": "herald_token=\(Self.token([("jobs", .array([.string("01hx0000000000000000000000")]))]))"])
        #expect(jobsOnly.status == 403 && jobsOnly.json?["error"]?["message"]?.stringValue?.contains("ids=") == true)
        // Read tokens never stand in for the submitter token.
        let all = Self.token([("all", .bool(true))])
        #expect(f.response("POST", "/jobs", body: #"{"kind":"demo"}"#, headers: ["AUTHORIZATION": "Bearer \(all)"]).status == 401)
        #expect(f.response("GET", "/jobs", headers: ["COOKIE": "herald_token=\(all)"]).status == 401)
    }

    @Test func aQueryAccessTokenIs401WhateverElseTheRequestCarries() throws {
        let f = try APIFixture(anonymous: false, tokens: "s3cret\n", readTokens: true)
        for (method, path) in [("POST", "/jobs"), ("GET", "/jobs"), ("GET", "/jobs/events"), ("GET", "/healthz")] {
            let r = f.response(method, path + "?access_token=s3cret", body: #"{"kind":"demo"}"#, headers: ["AUTHORIZATION": "Bearer s3cret"])
            let message = r.json?["error"]?["message"]?.stringValue ?? ""
            #expect(r.status == 401 && message.contains("Authorization") && message.contains("read token"), "\(path)")
        }
    }

    @Test func aStreamOpenedWithAReadTokenLastsUntilTheTokenLapsesOnly() throws {
        let f = try APIFixture(anonymous: false, tokens: "s3cret\n", readTokens: true, requireReadToken: true)
        let job = try submit(f, owner: "user-42")
        let exp = Clock.wallMilliseconds() / 1000 + 60
        let owner = ReadTokenSigner.sign(.object([("sub", .string("user-42")), ("exp", .int(Int(exp)))]), secret: APIFixture.readSecret)
        let lapse = (exp + 5) * 1000  // exp plus the leeway
        for path in ["/jobs/events", "/jobs/\(job.id)/events", "/jobs/events?ids=\(job.id)"] {
            guard case let .stream(_, _, until) = f.send("GET", path, headers: ["COOKIE": "herald_token=\(owner)"]).answer else {
                Issue.record("\(path): no stream")
                continue
            }
            #expect(until == lapse, "\(path)")
            // The submitter token has no end.
            guard case let .stream(_, _, forever) = f.send("GET", path, headers: ["AUTHORIZATION": "Bearer s3cret"]).answer else {
                Issue.record("\(path): no stream for the submitter")
                continue
            }
            #expect(forever == nil, "\(path)")
        }
    }
}
