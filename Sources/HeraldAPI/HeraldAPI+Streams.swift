import HeraldCore
import HeraldStore
import HeraldStreams

extension HeraldAPI {
    /// The most jobs one multi-job stream may follow.
    static let maxStreamJobs = 64

    func lastEventID(_ request: APIRequest, _ query: Query) -> String? {
        request.header("LAST_EVENT_ID") ?? query["last_event_id"]
    }

    /// Whether a new stream fits under `max_streams`; if not, the answer that sends the browser away for a while.
    func overCapacity() -> APIAnswer? {
        // Streams on their way to the hub hold a descriptor as much as open ones.
        let streams = metrics.openStreams.load(ordering: .relaxed) + metrics.arrivingStreams.load(ordering: .relaxed)
        guard streams >= config.maxStreams else { return nil }
        let retry = 5000 + Int(10_000 * randomUnit())
        return .response(APIResponse(status: 200, headers: [("Content-Type", "text/event-stream; charset=utf-8"), ("Cache-Control", "no-store")],
                                     body: Array(ServerSentEvents.retry(milliseconds: retry).utf8)))
    }

    func jobStream(_ id: JobID, _ request: APIRequest, _ query: Query) throws(APIError) -> APIAnswer {
        let (job, until) = try readableUntil(id, request, query)
        let cursor = lastEventID(request, query).flatMap(StreamCursor.init(eventID:))
        if ResumePlan.plan(job: job, cursor: cursor) == .finished { return .response(APIResponse(status: 204)) }
        if let full = overCapacity() { return full }
        let validCursor = cursor.flatMap { $0.seq <= job.seq ? $0 : nil }
        return .stream(.job(id, log: query["log"] == "1", cursor: validCursor), retryMilliseconds: jitteredRetry(), authorizedUntil: until)
    }

    /// `GET /jobs/events`: every job for a submitter or an `all` token; an owner's jobs for a `sub` token (SPEC §9).
    func dashboardStream(_ request: APIRequest, _ query: Query) throws(APIError) -> APIAnswer {
        let target: StreamTarget
        var until: Int64?
        switch try reader(request, query) {
        case .submitter, .anonymous: target = .dashboard
        case let .token(token):
            until = token.lapsesAtMilliseconds
            switch token.dashboard {
            case .everyJob: target = .dashboard
            case let .owner(owner): target = .owner(owner)
            case .none:
                throw APIError(403, "forbidden", "this read token lists jobs but grants no dashboard: use /events?ids=A,B with it")
            }
        case .nobody: throw HeraldAPI.unauthorized("a valid submit token or a read token is required (Authorization: Bearer TOKEN, the herald_token cookie or ?token=)")
        }
        if let full = overCapacity() { return full }
        return .stream(target, retryMilliseconds: jitteredRetry(), authorizedUntil: until)
    }

    func multiStream(_ request: APIRequest, _ query: Query) throws(APIError) -> APIAnswer {
        guard let list = query["ids"] else { return try dashboardStream(request, query) }
        let texts = list.split(separator: ",", omittingEmptySubsequences: false)
        guard (1...HeraldAPI.maxStreamJobs).contains(texts.count) else {
            throw APIError(400, "bad_query", "ids must list 1 to \(HeraldAPI.maxStreamJobs) job ids, separated by commas")
        }
        var ids: [JobID] = []
        for text in texts {
            guard !text.isEmpty else { throw APIError(400, "bad_query", "ids has an empty entry (ids=A,B,…)") }
            guard let id = JobID(text) else { throw APIError(404, "not_found", "no job with id \(text.prefix(40))") }
            if !ids.contains(id) { ids.append(id) }
        }
        var jobs: [Job] = []
        var until: Int64?
        for id in ids {
            let (job, lapse) = try readableUntil(id, request, query)
            jobs.append(job)
            if let lapse { until = min(until ?? .max, lapse) }
        }
        var cursor = lastEventID(request, query).flatMap { MultiStreamCursor(eventID: $0, jobCount: ids.count) }
        if let c = cursor, zip(c.seqs, jobs).contains(where: { $0 > $1.seq }) { cursor = nil }  // not from this server
        if let c = cursor, zip(c.seqs, jobs).allSatisfy({ $0 == $1.seq && $1.state.isTerminal }) {
            return .response(APIResponse(status: 204))
        }
        if let full = overCapacity() { return full }
        return .stream(.jobs(ids, cursor: cursor), retryMilliseconds: jitteredRetry(), authorizedUntil: until)
    }
}
