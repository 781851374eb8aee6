import Foundation
import HeraldAPI
import HeraldCore
import HeraldStore
import HeraldStreams
import HeraldTokens

/// An API over a real state directory in a fresh temp folder.
final class APIFixture {
    let root: String
    let store: DirectoryStore
    let metrics = StreamMetrics()
    let api: HeraldAPI
    let config: Config

    /// The read-token secret the fixture's API verifies with, when `readTokens` is on.
    static let readSecret = Array("fixture-read-token-secret-0123456789".utf8)

    init(anonymous: Bool = true, tokens: String? = nil, maxStreams: Int = 100, readTokens: Bool = false, requireReadToken: Bool = false) throws {
        root = NSTemporaryDirectory() + "herald-api-\(UUID().uuidString)"
        store = try DirectoryStore(root: root, create: true)
        var config = try Config.parse(yaml: """
            kinds:
              demo: {builtin: demo}
              report:
                command: [/bin/true]
                params: {month: '^[0-9]{4}-(0[1-9]|1[0-2])$', n: '^[0-9]+$'}
            """)
        config.stateDir = root
        config.allowAnonymousSubmit = anonymous
        config.maxStreams = maxStreams
        config.maxBodyBytes = 1000
        config.requireReadToken = requireReadToken
        self.config = config
        api = HeraldAPI(config: config, store: store, auth: SubmitterAuth(tokensFileText: tokens, anonymous: anonymous),
                        readTokens: readTokens ? ReadTokenVerifier(secrets: [APIFixture.readSecret]) : nil, metrics: metrics, log: { _ in })
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    /// Sends a request; `bodyRead` tells whether the API read the body.
    func send(_ method: String, _ uri: String, body: String = "", headers: [String: String] = [:],
              contentType: String? = "application/json", contentLength: String? = nil) -> (answer: APIAnswer, bodyRead: Bool) {
        var params = ["REQUEST_METHOD": method, "REQUEST_URI": uri, "CONTENT_LENGTH": contentLength ?? String(body.utf8.count)]
        if let contentType { params["CONTENT_TYPE"] = contentType }
        for (k, v) in headers { params["HTTP_" + k] = v }
        let read = Flag()
        let answer = api.handle(APIRequest(params: params) { limit in
            read.value = true
            return Array(body.utf8.prefix(limit))
        })
        return (answer, read.value)
    }

    func response(_ method: String, _ uri: String, body: String = "", headers: [String: String] = [:]) -> APIResponse {
        guard case let .response(r) = send(method, uri, body: body, headers: headers).answer else {
            Issue.record("expected a response, got a stream")
            return APIResponse(status: 0)
        }
        return r
    }

    func submitDemo() throws -> Job {
        let r = response("POST", "/jobs", body: #"{"kind":"demo","params":{"steps":2}}"#)
        return Job(json: try JSON.parse(r.body))!
    }
}

final class Flag: @unchecked Sendable { var value = false }

extension APIResponse {
    var json: JSON? { try? JSON.parse(body) }
    var errorCode: String? { json?["error"]?["code"]?.stringValue }
    func header(_ name: String) -> String? { headers.last { $0.0 == name }?.1 }
}

import Testing
