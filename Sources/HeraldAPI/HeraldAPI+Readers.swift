import HeraldCore
import HeraldPOSIX
import HeraldTokens

/// Who asks to read, by the credentials a request carries (SPEC §9).
enum Reader {
    /// A token of `submit_tokens_file` as `Authorization: Bearer`: may read everything.
    case submitter
    /// No credentials, and `allow_anonymous_submit` is on: may watch the dashboard, as any submitter.
    case anonymous
    /// A valid read token.
    case token(ReadToken)
    /// No credentials.
    case nobody
}

extension HeraldAPI {
    /// The reader a request names. A presented read token that does not verify is a 401 saying why.
    ///
    /// The token is the first of: the Bearer header (when it is no submitter token), the
    /// `herald_token` cookie, `?token=`. Never a 5xx: every refusal is the verifier's message.
    func reader(_ request: APIRequest, _ query: Query) throws(APIError) -> Reader {
        let authorization = request.header("AUTHORIZATION")
        if auth.listedToken(authorization) != nil { return .submitter }
        let presented = SubmitterAuth.bearer(authorization) ?? Cookie.value(named: "herald_token", in: request.header("COOKIE")) ?? query["token"]
        guard let presented else { return auth.anonymous ? .anonymous : .nobody }
        guard let readTokens else { return auth.anonymous ? .anonymous : .nobody }
        switch readTokens.verify(presented, now: Clock.wallMilliseconds()) {
        case let .success(token): return .token(token)
        case let .failure(refusal): throw HeraldAPI.unauthorized(refusal.message, error: "invalid_token")
        }
    }

    /// Under `require_read_token`, refuses a reader who may not read `job` (401, as for a missing credential);
    /// else when that access lapses (wall ms: a read token's expiry), nil for never.
    @discardableResult
    func requireReadAccess(_ job: Job, _ request: APIRequest, _ query: Query) throws(APIError) -> Int64? {
        guard config.requireReadToken else { return nil }
        switch try reader(request, query) {
        case .submitter: return nil
        case let .token(token):
            guard token.covers(job) else { throw HeraldAPI.unauthorized("the read token does not cover job \(job.id)", error: "insufficient_scope") }
            return token.lapsesAtMilliseconds
        case .anonymous, .nobody:
            throw HeraldAPI.unauthorized("reading job \(job.id) needs a read token covering it (Authorization: Bearer, "
                + "the herald_token cookie or ?token=) or the submitter token")
        }
    }

    /// A 401 with `WWW-Authenticate: Bearer` (and the RFC 6750 `error` when a token was refused).
    static func unauthorized(_ message: String, error: String? = nil) -> APIError {
        let challenge = "Bearer realm=\"herald\"" + (error.map { ", error=\"\($0)\"" } ?? "")
        return APIError(401, "unauthorized", message, headers: [("WWW-Authenticate", challenge)])
    }
}
