/// Why submitted params were refused; every case names the param.
public enum ParamsError: Error, Equatable, Sendable, CustomStringConvertible {
    case notAnObject
    case wrongType(String)
    case notAllowed(String, kind: String)
    case noMatch(String)
    case outOfRange(String, ClosedRange<Int>)
    case invalidValue(String, String)

    public var description: String {
        switch self {
        case .notAnObject: return "'params' must be a JSON object of strings"
        case let .wrongType(name): return "param '\(name)' must be a string, number or boolean"
        case let .notAllowed(name, kind): return "kind '\(kind)' takes no param named '\(name)'"
        case let .noMatch(name): return "param '\(name)' does not match its pattern"
        case let .outOfRange(name, range): return "param '\(name)' must be a whole number from \(range.lowerBound) to \(range.upperBound)"
        case let .invalidValue(name, why): return "param '\(name)' \(why)"
        }
    }

    /// The HTTP status this refusal gets: a wrong JSON type is a bad request shape, the rest unprocessable.
    public var httpStatus: Int { 422 }
}

/// The builtin demo kind's params, checked: `steps` steps of `interval_ms` each, failing at `fail_at`.
public struct DemoParams: Sendable, Equatable {
    public var steps = 10
    public var intervalMilliseconds = 1000
    public var failAt: Int?

    static let ranges: [String: ClosedRange<Int>] = ["steps": 1...10000, "interval_ms": 0...60000, "fail_at": 1...10000]

    /// Reads and range-checks the demo params.
    public init(_ params: [String: String]) throws(ParamsError) {
        for (name, value) in params {
            guard let range = DemoParams.ranges[name] else { throw .notAllowed(name, kind: "demo") }
            guard value.utf8.count <= 6, value.utf8.allSatisfy({ (48...57).contains($0) }), let v = Int(value), range.contains(v) else {
                throw .outOfRange(name, range)
            }
            switch name {
            case "steps": steps = v
            case "interval_ms": intervalMilliseconds = v
            default: failAt = v
            }
        }
    }
}

extension KindConfig {
    /// Checks submitted JSON params against this kind and returns them as strings, as the job echoes them.
    ///
    /// A JSON number or boolean is taken as its JSON text; null, arrays and objects are refused.
    public func validate(params json: JSON?) throws(ParamsError) -> [String: String] {
        var params: [String: String] = [:]
        switch json {
        case nil, .null?: break
        case let .object(members)?:
            for (name, value) in members {
                switch value {
                case let .string(s): params[name] = s
                case let .number(n): params[name] = n
                case let .bool(b): params[name] = b ? "true" : "false"
                default: throw .wrongType(name)
                }
            }
        default: throw .notAnObject
        }
        switch executor {
        case .demo:
            _ = try DemoParams(params)
        case .command:
            for (name, value) in params {
                guard let pattern = self.params[exactly: name] else { throw .notAllowed(name, kind: self.name) }
                guard !value.utf8.contains(0) else { throw .invalidValue(name, "contains a NUL byte") }
                guard pattern.matchesWhole(value) else { throw .noMatch(name) }
            }
        }
        return params
    }
}
