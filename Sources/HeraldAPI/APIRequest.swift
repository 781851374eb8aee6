import HeraldStreams

/// A request as the API sees it, independent of FastCGI.
public struct APIRequest {
    public let method: String
    /// The path without the query string.
    public let path: String
    public let query: String
    /// FastCGI/CGI params (`HTTP_AUTHORIZATION`, `CONTENT_LENGTH`, …).
    public let params: [String: String]
    /// Reads up to the given number of body bytes; called at most once, after the size was checked.
    public let readBody: (Int) -> [UInt8]

    /// A request from CGI-style params (`REQUEST_METHOD`, `REQUEST_URI`, `QUERY_STRING`, …).
    public init(params: [String: String], readBody: @escaping (Int) -> [UInt8]) {
        self.params = params
        self.readBody = readBody
        method = params["REQUEST_METHOD"] ?? "GET"
        let uri = params["REQUEST_URI"] ?? params["DOCUMENT_URI"] ?? "/"
        if let q = uri.firstIndex(of: "?") {
            path = String(uri[..<q])
            query = String(uri[uri.index(after: q)...])
        } else {
            path = uri
            query = params["QUERY_STRING"] ?? ""
        }
    }

    /// An HTTP request header by its CGI name (`AUTHORIZATION` → `HTTP_AUTHORIZATION`).
    public func header(_ name: String) -> String? { params["HTTP_" + name] }
}

/// What the API answers: a complete response, or an event stream for the hub to carry.
public enum APIAnswer {
    case response(APIResponse)
    /// `authorizedUntil`: when the read token that opened it lapses (wall ms), if one did.
    case stream(StreamTarget, retryMilliseconds: Int, authorizedUntil: Int64?)
}
