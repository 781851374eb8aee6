import HeraldCore
import HeraldPOSIX
import HeraldStore
import HeraldStreams
import HeraldTokens
import Synchronization

/// Herald's HTTP API (SPEC §3, §4): routes a request to its answer. Thread-safe; holds no request state.
public final class HeraldAPI: Sendable {
    let config: Config
    let store: any JobStore
    let auth: SubmitterAuth
    /// Checks read tokens; nil when no `read_token_secret_file` is configured.
    let readTokens: ReadTokenVerifier?
    let router: Router
    let metrics: StreamMetrics
    /// Request counters for /metrics.
    public let requests = RequestCounters()
    let log: @Sendable (String) -> Void
    /// This node's job IDs, increasing in submit order.
    let jobIDs = Mutex(JobIDSequence())

    /// The API over `store`, with the hub's `metrics` for capacity and /metrics; `readTokens` checks read tokens, if configured.
    public init(config: Config, store: any JobStore, auth: SubmitterAuth, readTokens: ReadTokenVerifier? = nil, metrics: StreamMetrics,
                log: @escaping @Sendable (String) -> Void) {
        self.config = config
        self.store = store
        self.auth = auth
        self.readTokens = readTokens
        router = Router(prefix: config.urlPrefix)
        self.metrics = metrics
        self.log = log
    }

    /// Answers one request.
    public func handle(_ request: APIRequest) -> APIAnswer {
        let routed = router.route(method: request.method, path: request.path)
        let answer: APIAnswer
        let routeName: String
        switch routed {
        case let .failure(.methodNotAllowed(allow)):
            routeName = "unknown"
            answer = .response(.error(405, "method_not_allowed", "\(request.method) is not allowed here; use \(allow.joined(separator: " or "))",
                                      headers: [("Allow", allow.joined(separator: ", "))]))
        case .failure(.notFound):
            routeName = "unknown"
            answer = .response(.error(404, "not_found", "no such job or route"))
        case let .success(route):
            routeName = route.name
            do {
                answer = try answerRoute(route, request)
            } catch {
                answer = .response(error.response)
                if error.status == 503 { log("\(request.method) \(request.path.prefix(200)) answered 503: \(error.logDetail ?? error.message)") }
            }
        }
        switch answer {
        case let .response(r): requests.count(route: routeName, status: r.status)
        case .stream: requests.count(route: routeName, status: 200)
        }
        return answer
    }

    private func answerRoute(_ route: Route, _ request: APIRequest) throws(APIError) -> APIAnswer {
        guard let query = Query(request.query) else { throw APIError(400, "bad_query", "the query string is not valid percent-encoded UTF-8") }
        // The long-lived submitter token in a URL lands in logs, history and Referer (SPEC §3, amended):
        // refused whatever else the request carries, so a client that sends it learns at once.
        if query["access_token"] != nil {
            throw APIError(401, "unauthorized", "access_token in the query string is not accepted (URLs end up in logs): "
                + "send the submitter token as the Authorization: Bearer header, and give browsers a read token "
                + "(Authorization: Bearer, the herald_token cookie, or ?token=)",
                headers: [("WWW-Authenticate", "Bearer realm=\"herald\"")])
        }
        switch route {
        case .submit: return .response(try submit(request, query))
        case .list: return .response(try list(request, query))
        case let .job(id): return .response(.json(200, try readable(id, request, query).json(urlPrefix: config.urlPrefix)))
        case let .jobLog(id): return .response(try logAnswer(id, request, query))
        case let .cancel(id): return .response(try cancel(id, request, query))
        case let .jobEvents(id): return try jobStream(id, request, query)
        case .events: return try multiStream(request, query)
        case .healthz: return .response(health())
        case .metrics: return .response(prometheus())
        }
    }

    // MARK: Helpers

    func requireSubmitter(_ request: APIRequest, _ query: Query) throws(APIError) {
        guard auth.allows(authorization: request.header("AUTHORIZATION")) else {
            throw HeraldAPI.unauthorized("a valid submit token is required (Authorization: Bearer TOKEN)")
        }
    }

    /// The job, if it exists and the request may read it (`require_read_token`).
    func readable(_ id: JobID, _ request: APIRequest, _ query: Query) throws(APIError) -> Job {
        try readableUntil(id, request, query).job
    }

    /// The job, if it exists and the request may read it, and when that access lapses (nil: never).
    func readableUntil(_ id: JobID, _ request: APIRequest, _ query: Query) throws(APIError) -> (job: Job, until: Int64?) {
        let job = try existing(id)
        return (job, try requireReadAccess(job, request, query))
    }

    func existing(_ id: JobID) throws(APIError) -> Job {
        guard let job = try storeCall({ () throws(StoreError) in try store.job(id) }) else {
            throw APIError(404, "not_found", "no job with id \(id)")
        }
        return job
    }

    func storeCall<T>(_ body: () throws(StoreError) -> T) throws(APIError) -> T {
        do { return try body() } catch {
            switch error {
            case .unavailable, .unsuitable, .claimLost: throw APIError(503, "unavailable", "the job store cannot be used right now; try again later", logDetail: error.description)
            case .corrupt: throw APIError(503, "unavailable", "a job's state could not be read; try again later", logDetail: error.description)
            }
        }
    }

    /// The configured retry with ±30% jitter, per connection, so reconnects spread out.
    func jitteredRetry() -> Int {
        let base = Double(config.retry.milliseconds)
        return Int(base * (0.7 + 0.6 * randomUnit()))
    }

    func randomUnit() -> Double {
        let bytes = RandomSource.bytes(4)
        let v = bytes.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        return Double(v) / Double(UInt32.max)
    }
}

/// A refusal with its status, code and message (and detail for the log only, never the client).
struct APIError: Error {
    let status: Int
    let code: String
    let message: String
    var headers: [(String, String)] = []
    var logDetail: String?

    init(_ status: Int, _ code: String, _ message: String, headers: [(String, String)] = [], logDetail: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.logDetail = logDetail
    }

    var response: APIResponse { .error(status, code, message, headers: headers) }
}
