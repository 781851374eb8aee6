/// A request's target in Herald's API, once its method and path are understood.
public enum Route: Equatable, Sendable {
    case submit
    case list
    case job(JobID)
    case jobEvents(JobID)
    case jobLog(JobID)
    case cancel(JobID)
    case events
    case healthz
    case metrics

    /// A short stable name for metrics labels.
    public var name: String {
        switch self {
        case .submit: return "submit"
        case .list: return "list"
        case .job: return "job"
        case .jobEvents: return "job_events"
        case .jobLog: return "job_log"
        case .cancel: return "cancel"
        case .events: return "events"
        case .healthz: return "healthz"
        case .metrics: return "metrics"
        }
    }
}

/// Why no route was found: the path names nothing, or not with this method.
public enum RouteRefusal: Error, Equatable, Sendable {
    case notFound
    case methodNotAllowed(allow: [String])
}

/// Maps a method and path to a route, under the configured URL prefix.
public struct Router: Sendable {
    public let prefix: String

    /// A router for the API under `prefix` (e.g. `/jobs`).
    public init(prefix: String) { self.prefix = prefix }

    /// The route for `method` and `path` (no query string). An ID that is not valid text is `notFound`.
    public func route(method: String, path: String) -> Result<Route, RouteRefusal> {
        func allow(_ methods: [String], _ route: Route) -> Result<Route, RouteRefusal> {
            methods.contains(method) ? .success(route) : .failure(.methodNotAllowed(allow: methods))
        }
        switch path {
        case "/healthz": return allow(["GET"], .healthz)
        case "/metrics": return allow(["GET"], .metrics)
        case prefix: return method == "POST" ? .success(.submit) : allow(["GET", "POST"], .list)
        case prefix + "/events": return allow(["GET"], .events)
        default: break
        }
        guard path.hasPrefix(prefix + "/") else { return .failure(.notFound) }
        let parts = path.dropFirst(prefix.count + 1).split(separator: "/", omittingEmptySubsequences: false)
        guard let id = JobID(parts[0]) else { return .failure(.notFound) }
        switch parts.count {
        case 1: return allow(["GET"], .job(id))
        case 2:
            switch parts[1] {
            case "events": return allow(["GET"], .jobEvents(id))
            case "log": return allow(["GET"], .jobLog(id))
            case "cancel": return allow(["POST"], .cancel(id))
            default: return .failure(.notFound)
            }
        default: return .failure(.notFound)
        }
    }
}

/// A parsed `application/x-www-form-urlencoded` query string.
public struct Query: Sendable, Equatable {
    /// The pairs in order; a name without `=` has an empty value.
    public let pairs: [(String, String)]

    public static func == (a: Query, b: Query) -> Bool {
        a.pairs.count == b.pairs.count && zip(a.pairs, b.pairs).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
    }

    /// Parses `a=1&b=x%20y`; nil on a bad percent escape or invalid UTF-8.
    public init?(_ text: String) {
        var pairs: [(String, String)] = []
        for part in text.split(separator: "&") {
            let kv = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = Query.decode(kv[0]), let value = Query.decode(kv.count > 1 ? kv[1] : "") else { return nil }
            pairs.append((name, value))
        }
        self.pairs = pairs
    }

    /// The last value given for `name`.
    public subscript(name: String) -> String? { pairs.last { $0.0 == name }?.1 }

    static func decode(_ s: Substring) -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(s.utf8.count)
        var it = s.utf8.makeIterator()
        while let b = it.next() {
            switch b {
            case UInt8(ascii: "+"): bytes.append(0x20)
            case UInt8(ascii: "%"):
                guard let h = it.next().flatMap(hexValue), let l = it.next().flatMap(hexValue) else { return nil }
                bytes.append(h << 4 | l)
            default: bytes.append(b)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
