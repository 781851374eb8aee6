import Yams

/// A mistake in the configuration file, naming the key and its line.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    /// The dotted key, e.g. `kinds.report.timeout`, or empty for the file as a whole.
    public let key: String
    /// The 1-based line of the offending key or value, when known.
    public let line: Int?
    public let message: String

    public init(key: String, line: Int?, message: String) {
        self.key = key
        self.line = line
        self.message = message
    }

    public var description: String {
        let place = line.map { "line \($0): " } ?? ""
        return key.isEmpty ? "\(place)\(message)" : "\(place)\(key): \(message)"
    }
}

extension Config {
    /// The variable that overrides `database_url` (SPEC §8).
    public static let databaseURLVariable = "HERALD_DATABASE_URL"

    /// Parses the YAML text of a configuration file, refusing unknown keys, wrong types, bad regexes and bad durations;
    /// `environment` holds the variables that override keys (`HERALD_DATABASE_URL`; an empty one is unset).
    public static func parse(yaml text: String, environment: [String: String] = [:]) throws(ConfigError) -> Config {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let YamlError.duplicatedKeysInMapping(duplicates, context) {
            // Yams refuses duplicates before `mapping` sees them: still name the key and its line.
            throw ConfigError(key: duplicates.first ?? "", line: context.mark.line, message: "appears twice")
        } catch let error as YamlError {
            throw ConfigError(key: "", line: yamlErrorLine(error), message: "not valid YAML: \(yamlErrorSummary(error))")
        } catch {
            throw ConfigError(key: "", line: nil, message: "not valid YAML: \(error)")
        }
        var config = Config()
        var requireLine: Int?
        var stateDirLine: Int?
        var databaseURLLine: Int?
        // No document, or an empty one (`---` alone): every default.
        guard let root, root.null == nil else {
            try chooseStore(&config, environment: environment, stateDirLine: nil, databaseURLLine: nil)
            return config
        }
        let top = try mapping(root, key: "")
        for (keyNode, value) in top {
            let key = keyNode.string ?? ""
            switch key {
            case "state_dir":
                config.stateDir = try path(value, key: key)
                stateDirLine = line(keyNode)
            case "database_url":
                config.databaseURL = try string(value, key: key)
                databaseURLLine = line(keyNode)
            case "socket": config.socket = try path(value, key: key)
            case "url_prefix":
                let prefix = try string(value, key: key)
                guard prefix.hasPrefix("/"), !prefix.hasSuffix("/"), !prefix.contains("?") else {
                    throw ConfigError(key: key, line: line(value), message: "must start with '/' and not end with one, e.g. /jobs")
                }
                config.urlPrefix = prefix
            case "submit_tokens_file": config.submitTokensFile = value.null != nil ? nil : try path(value, key: key)
            case "allow_anonymous_submit": config.allowAnonymousSubmit = try bool(value, key: key)
            case "read_token_secret_file":
                if case let .sequence(items) = value {
                    guard (1...2).contains(items.count) else {
                        throw ConfigError(key: key, line: line(value), message: "must be one path, or a list of two during a rotation: [new, old]")
                    }
                    config.readTokenSecretFiles = []
                    for item in items { config.readTokenSecretFiles.append(try path(item, key: key)) }
                } else {
                    config.readTokenSecretFiles = [try path(value, key: key)]
                }
            case "require_read_token":
                config.requireReadToken = try bool(value, key: key)
                requireLine = line(value)
            case "max_body_bytes": config.maxBodyBytes = try int(value, key: key, in: 1...(64 << 20))
            case "max_streams": config.maxStreams = try int(value, key: key, in: 1...1_000_000)
            case "heartbeat": config.heartbeat = try duration(value, key: key, min: 100)
            case "retry": config.retry = try duration(value, key: key, min: 100)
            case "workers": config.workers = try int(value, key: key, in: 1...1024)
            case "retention": config.retention = try duration(value, key: key, min: 0)
            case "kinds":
                for (nameNode, kindNode) in try mapping(value, key: key) {
                    let name = nameNode.string ?? ""
                    guard isKindName(name) else {
                        throw ConfigError(key: "kinds.\(name)", line: line(nameNode),
                                          message: "a kind's name must be 1-64 letters, digits, '-' or '_'")
                    }
                    config.kinds[name] = try kind(named: name, kindNode, line: line(nameNode))
                }
            default:
                throw ConfigError(key: key, line: line(keyNode), message: "unknown key")
            }
        }
        try chooseStore(&config, environment: environment, stateDirLine: stateDirLine, databaseURLLine: databaseURLLine)
        if config.requireReadToken, config.readTokenSecretFiles.isEmpty {
            throw ConfigError(key: "require_read_token", line: requireLine,
                              message: "needs read_token_secret_file: without a secret no read token could be checked")
        }
        return config
    }

    /// Applies `HERALD_DATABASE_URL`, and refuses a configuration naming two stores.
    private static func chooseStore(_ config: inout Config, environment: [String: String], stateDirLine: Int?,
                                    databaseURLLine: Int?) throws(ConfigError) {
        var from = databaseURLLine.map { "database_url (line \($0))" }
        if let url = environment[databaseURLVariable], !url.isEmpty {
            config.databaseURL = url
            from = "database_url (from \(databaseURLVariable))"
        }
        if let from, let stateDirLine {
            throw ConfigError(key: "state_dir", line: stateDirLine,
                              message: "both state_dir and \(from) are set: a configuration names one store, remove one of them")
        }
    }

    private static func kind(named name: String, _ node: Node, line nameLine: Int?) throws(ConfigError) -> KindConfig {
        let base = "kinds.\(name)"
        var executor: KindConfig.Executor?
        var paramsLine: Int?
        var kind = KindConfig(name: name, executor: .demo)
        for (keyNode, value) in try mapping(node, key: base) {
            let key = "\(base).\(keyNode.string ?? "")"
            switch keyNode.string ?? "" {
            case "builtin":
                guard try string(value, key: key) == "demo" else {
                    throw ConfigError(key: key, line: line(value), message: "the only builtin kind is 'demo'")
                }
                executor = .demo
            case "command":
                guard case let .sequence(items) = value, !items.isEmpty else {
                    throw ConfigError(key: key, line: line(value), message: "must be a non-empty list: [program, arg, ...]")
                }
                var argv: [String] = []
                for item in items { argv.append(try string(item, key: key)) }
                guard argv[0].hasPrefix("/") else {
                    throw ConfigError(key: key, line: line(value), message: "the program must be an absolute path (it is run without a shell)")
                }
                executor = .command(argv)
            case "params":
                paramsLine = line(keyNode)
                for (paramNode, regexNode) in try mapping(value, key: key) {
                    let param = paramNode.string ?? ""
                    let paramKey = "\(key).\(param)"
                    guard isParamName(param) else {
                        throw ConfigError(key: paramKey, line: line(paramNode), message: "a param's name must be letters, digits and '_', not starting with a digit")
                    }
                    let source = try string(regexNode, key: paramKey)
                    do {
                        kind.params[param] = try ParamPattern(source)
                    } catch {
                        throw ConfigError(key: paramKey, line: line(regexNode), message: "not a valid regex: \(source)")
                    }
                }
            case "timeout": kind.timeout = try duration(value, key: key, min: 1)
            case "concurrency": kind.concurrency = try int(value, key: key, in: 1...1024)
            case "retries": kind.retries = try int(value, key: key, in: 0...100)
            default:
                throw ConfigError(key: key, line: line(keyNode), message: "unknown key")
            }
        }
        guard let executor else {
            // The kind's own line: a block mapping's mark is its first key, one line further down.
            throw ConfigError(key: base, line: nameLine ?? line(node), message: "needs either 'command' or 'builtin'")
        }
        if executor == .demo, !kind.params.isEmpty {
            throw ConfigError(key: "\(base).params", line: paramsLine ?? line(node), message: "the builtin demo kind has fixed params")
        }
        kind.executor = executor
        return kind
    }

    // MARK: Typed readers; each names the key and line when the value is wrong.

    private static func line(_ node: Node) -> Int? { node.mark.map { $0.line } }

    private static func mapping(_ node: Node, key: String) throws(ConfigError) -> [(Node, Node)] {
        guard case let .mapping(m) = node else {
            throw ConfigError(key: key, line: line(node), message: "must be a mapping of keys to values")
        }
        var seen = Set<String>()
        for (k, _) in m {
            let name = k.string ?? ""
            if !seen.insert(name).inserted {
                throw ConfigError(key: key.isEmpty ? name : "\(key).\(name)", line: line(k), message: "appears twice")
            }
        }
        return m.map { ($0.key, $0.value) }
    }

    private static func scalar(_ node: Node, key: String, expected: String) throws(ConfigError) -> Node.Scalar {
        guard case let .scalar(s) = node else {
            throw ConfigError(key: key, line: line(node), message: "must be \(expected)")
        }
        return s
    }

    private static func string(_ node: Node, key: String) throws(ConfigError) -> String {
        let s = try scalar(node, key: key, expected: "a string")
        guard !s.string.isEmpty else { throw ConfigError(key: key, line: line(node), message: "must not be empty") }
        return s.string
    }

    private static func path(_ node: Node, key: String) throws(ConfigError) -> String {
        let p = try string(node, key: key)
        guard p.hasPrefix("/") else { throw ConfigError(key: key, line: line(node), message: "must be an absolute path") }
        return p
    }

    private static func bool(_ node: Node, key: String) throws(ConfigError) -> Bool {
        let s = try scalar(node, key: key, expected: "true or false")
        switch s.string {
        case "true": return true
        case "false": return false
        default: throw ConfigError(key: key, line: line(node), message: "must be true or false, not '\(s.string)'")
        }
    }

    private static func int(_ node: Node, key: String, in range: ClosedRange<Int>) throws(ConfigError) -> Int {
        let s = try scalar(node, key: key, expected: "a whole number")
        guard s.style == .plain, let v = Int(s.string) else {
            throw ConfigError(key: key, line: line(node), message: "must be a whole number, not '\(s.string)'")
        }
        guard range.contains(v) else {
            throw ConfigError(key: key, line: line(node), message: "must be between \(range.lowerBound) and \(range.upperBound), not \(v)")
        }
        return v
    }

    /// The longest duration any key takes.
    static let maxDuration = HeraldDuration(milliseconds: 3_660 * 86_400_000)

    private static func duration(_ node: Node, key: String, min: Int64) throws(ConfigError) -> HeraldDuration {
        let s = try scalar(node, key: key, expected: "a duration")
        guard let d = HeraldDuration(parsing: s.string) else {
            throw ConfigError(key: key, line: line(node), message: "'\(s.string)' is not a duration (write 500ms, 15s, 30m, 2h or 7d)")
        }
        guard d.milliseconds >= min else {
            throw ConfigError(key: key, line: line(node), message: "must be at least \(HeraldDuration(milliseconds: min))")
        }
        // Far beyond any sensible value, and far below where arithmetic on milliseconds could overflow.
        guard d.milliseconds <= maxDuration.milliseconds else {
            throw ConfigError(key: key, line: line(node), message: "must be at most \(maxDuration)")
        }
        return d
    }

    private static func isKindName(_ s: String) -> Bool {
        (1...64).contains(s.utf8.count) && s.utf8.allSatisfy { isAlnum($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") }
    }

    private static func isParamName(_ s: String) -> Bool {
        guard let first = s.utf8.first, !(48...57).contains(first), s.utf8.count <= 64 else { return false }
        return s.utf8.allSatisfy { isAlnum($0) || $0 == UInt8(ascii: "_") }
    }

    private static func isAlnum(_ b: UInt8) -> Bool {
        (48...57).contains(b) || (65...90).contains(b) || (97...122).contains(b)
    }

    private static func yamlErrorLine(_ error: YamlError) -> Int? {
        switch error {
        case let .scanner(_, _, mark, _), let .parser(_, _, mark, _), let .composer(_, _, mark, _): return mark.line
        default: return nil
        }
    }

    private static func yamlErrorSummary(_ error: YamlError) -> String {
        switch error {
        case let .scanner(_, problem, _, _), let .parser(_, problem, _, _), let .composer(_, problem, _, _): return problem
        default: return "\(error)"
        }
    }
}
