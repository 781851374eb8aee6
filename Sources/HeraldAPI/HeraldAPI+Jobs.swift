import HeraldCore
import HeraldPOSIX
import HeraldStore
import HeraldTokens

extension HeraldAPI {
    func submit(_ request: APIRequest, _ query: Query) throws(APIError) -> APIResponse {
        try requireSubmitter(request, query)
        let idempotencyKey = try self.idempotencyKey(request)
        let contentType = request.params["CONTENT_TYPE"] ?? ""
        // Media types are case-insensitive (RFC 9110 §8.3.1).
        guard contentType.split(separator: ";").first.map({ $0.trimmingCharacters().lowercased() == "application/json" }) == true else {
            throw APIError(415, "unsupported_media_type", "the body must be JSON (Content-Type: application/json)")
        }
        // nginx's fastcgi_params sends an empty CONTENT_LENGTH for a request without a body.
        let declared = request.params["CONTENT_LENGTH"].flatMap { $0.isEmpty ? nil : $0 } ?? "0"
        guard let length = Int(declared), length >= 0 else {
            throw APIError(400, "bad_request", "Content-Length is not a number")
        }
        // Refused from the declared length, before a byte of the body is read.
        guard length <= config.maxBodyBytes else {
            throw APIError(413, "body_too_large", "the body is \(length) bytes; the limit is \(config.maxBodyBytes)")
        }
        let body = request.readBody(length)
        let json: JSON
        do { json = try JSON.parse(body) } catch {
            throw APIError(400, "bad_json", "the body is not valid JSON: \(error)")
        }
        guard case .object = json else { throw APIError(400, "bad_json", "the body must be a JSON object with 'kind' and 'params'") }
        guard let kindName = json["kind"]?.stringValue else { throw APIError(400, "bad_json", "'kind' must be a string") }
        guard let kind = config.kinds[exactly: kindName] else {
            throw APIError(422, "unknown_kind", "no job kind named '\(kindName.prefix(64))'")
        }
        let params: [String: String]
        do { params = try kind.validate(params: json["params"]) } catch {
            throw APIError(422, "invalid_params", error.description)
        }
        var owner: String?
        if let given = json["owner"], given != .null {
            guard let text = given.stringValue, JobOwner.isValid(text) else {
                throw APIError(422, "invalid_owner", "'owner' must be a string of 1 to \(JobOwner.maxLength) characters from A-Z a-z 0-9 . _ : @ -")
            }
            owner = text
        }
        let now = Clock.wallMilliseconds()
        let random = RandomSource.bytes(10)
        let id = jobIDs.withLock { $0.next(nowMilliseconds: UInt64(now), random: random) }
        let job = Job(id: id, kind: kind.name, params: params, owner: owner, now: Timestamp(milliseconds: now))
        guard let idempotencyKey else {
            try storeCall { () throws(StoreError) in try store.submit(job) }
            return .json(201, job.json(urlPrefix: config.urlPrefix), headers: [("Location", "\(config.urlPrefix)/\(id)")])
        }
        let record = idempotencyRecord(key: idempotencyKey, request: request, body: json)
        switch try storeCall({ () throws(StoreError) in try store.submit(job, idempotency: record) }) {
        case let .created(job):
            return .json(201, job.json(urlPrefix: config.urlPrefix), headers: [("Location", "\(config.urlPrefix)/\(job.id)")])
        case let .repeated(job):
            return .json(200, job.json(urlPrefix: config.urlPrefix), headers: [("Location", "\(config.urlPrefix)/\(job.id)")])
        case .keyReused:
            throw APIError(422, "idempotency_key_reused", "this Idempotency-Key was used with another body within 24 hours; use a new key for a new job")
        }
    }

    /// The `Idempotency-Key` header: nil when absent, 400 unless 1-255 visible ASCII characters.
    private func idempotencyKey(_ request: APIRequest) throws(APIError) -> String? {
        guard let key = request.header("IDEMPOTENCY_KEY") else { return nil }
        guard (1...255).contains(key.utf8.count), key.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
            throw APIError(400, "bad_request", "Idempotency-Key must be 1 to 255 visible ASCII characters")
        }
        return key
    }

    /// The key scoped to the submitter token (all anonymous submitters share one scope) and the body, hashed:
    /// neither the token nor the key is stored.
    private func idempotencyRecord(key: String, request: APIRequest, body: JSON) -> IdempotencyRecord {
        let scope = auth.listedToken(request.header("AUTHORIZATION")).map { "token:" + Crypto.sha256Hex($0) } ?? "anonymous"
        return IdempotencyRecord(keyHash: Crypto.sha256Hex(Array("\(scope)\n\(key)".utf8)),
                                 bodyHash: Crypto.sha256Hex(Array(body.canonical.text.utf8)))
    }

    func list(_ request: APIRequest, _ query: Query) throws(APIError) -> APIResponse {
        try requireSubmitter(request, query)
        var filter = JobFilter(limit: 50)
        if let s = query["state"] {
            guard let state = JobState(rawValue: s) else {
                throw APIError(400, "bad_query", "state must be one of queued, running, succeeded, failed, canceled")
            }
            filter.state = state
        }
        if let k = query["kind"] { filter.kind = k }
        if let o = query["owner"] {
            guard JobOwner.isValid(o) else { throw APIError(400, "bad_query", "owner must be 1 to \(JobOwner.maxLength) characters from A-Z a-z 0-9 . _ : @ -") }
            filter.owner = o
        }
        if let l = query["limit"] {
            guard let limit = Int(l), (1...500).contains(limit) else { throw APIError(400, "bad_query", "limit must be a number from 1 to 500") }
            filter.limit = limit
        }
        if let b = query["before"] {
            guard let before = JobID(b) else { throw APIError(400, "bad_query", "before must be a job id") }
            filter.before = before
        }
        let jobs = try storeCall { () throws(StoreError) in try store.jobs(filter) }
        let next: JSON = jobs.count == filter.limit ? jobs.last.map { .string($0.id.text) } ?? .null : .null
        return .json(200, .object([("jobs", .array(jobs.map { $0.json(urlPrefix: config.urlPrefix) })), ("next", next)]))
    }

    func cancel(_ id: JobID, _ request: APIRequest, _ query: Query) throws(APIError) -> APIResponse {
        try requireSubmitter(request, query)
        let job = try existing(id)
        guard !job.state.isTerminal else {
            throw APIError(409, "already_ended", "job \(id) already ended: \(job.state.rawValue)")
        }
        try storeCall { () throws(StoreError) in try store.requestCancel(id) }
        return .json(202, job.json(urlPrefix: config.urlPrefix))
    }

    /// The log caps at 10 MiB plus a marker, so one answer holds it all.
    static let maxLogAnswer = 11 << 20

    func logAnswer(_ id: JobID, _ request: APIRequest, _ query: Query) throws(APIError) -> APIResponse {
        _ = try readable(id, request, query)
        var offset = 0
        if let o = query["offset"] {
            guard let v = Int(o), v >= 0 else { throw APIError(400, "bad_query", "offset must be a whole number of bytes, 0 or more") }
            offset = v
        }
        let bytes = try storeCall { () throws(StoreError) in try store.log(id, from: offset, maxBytes: HeraldAPI.maxLogAnswer).bytes }
        return APIResponse(status: 200, headers: [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")], body: bytes)
    }
}

extension Substring {
    func trimmingCharacters() -> String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
