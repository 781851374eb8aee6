import HeraldCore

/// A complete HTTP answer, written CGI-style (a `Status:` line, headers, a blank line, the body).
public struct APIResponse {
    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A JSON answer.
    public static func json(_ status: Int, _ value: JSON, headers: [(String, String)] = []) -> APIResponse {
        APIResponse(status: status, headers: [("Content-Type", "application/json; charset=utf-8")] + headers,
                    body: Array((value.text + "\n").utf8))
    }

    /// The error body of SPEC §3: `{"error": {"status", "code", "message"}}`.
    public static func error(_ status: Int, _ code: String, _ message: String, headers: [(String, String)] = []) -> APIResponse {
        json(status, .object([("error", .object([("status", .int(status)), ("code", .string(code)), ("message", .string(message))]))]),
             headers: headers)
    }

    /// The bytes to hand to the FastCGI layer.
    public var cgiBytes: [UInt8] {
        var head = "Status: \(status) \(APIResponse.reason(status))\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        head += "\r\n"
        return Array(head.utf8) + body
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 200: return "OK"
        case 201: return "Created"
        case 202: return "Accepted"
        case 204: return "No Content"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 409: return "Conflict"
        case 413: return "Payload Too Large"
        case 415: return "Unsupported Media Type"
        case 422: return "Unprocessable Entity"
        case 503: return "Service Unavailable"
        default: return "Internal Server Error"
        }
    }
}
