/// Herald's configuration, as `herald.yml` sets it (SPEC §2); defaults for what it leaves out.
public struct Config: Sendable {
    /// The directory store's root; the store unless `databaseURL` is set (never both in one file).
    public var stateDir = "/var/lib/herald"
    /// The PostgreSQL store's libpq URI or conninfo (SPEC §8), from `database_url` or `HERALD_DATABASE_URL`.
    public var databaseURL: String?
    public var socket = "/run/herald/fcgi.sock"
    public var urlPrefix = "/jobs"
    public var submitTokensFile: String? = "/etc/herald/tokens"
    public var allowAnonymousSubmit = false
    /// Files holding the read-token secret (SPEC §9): one, or two during a rotation (the new one first).
    public var readTokenSecretFiles: [String] = []
    /// Whether reading a job by its id needs a submitter token or a read token covering it.
    public var requireReadToken = false
    public var maxBodyBytes = 65536
    public var maxStreams = 20000
    public var heartbeat = HeraldDuration.seconds(15)
    public var retry = HeraldDuration.seconds(3)
    public var workers = 4
    public var retention = HeraldDuration.seconds(7 * 86400)
    public var kinds: [String: KindConfig] = [:]

    /// The default configuration path, used when neither `--config` nor `HERALD_CONFIG` names one.
    public static let defaultPath = "/etc/herald/herald.yml"

    /// A configuration with every default and no kinds.
    public init() {}
}

/// One job kind: what runs, which params it takes, and its limits.
public struct KindConfig: Sendable {
    /// How a kind's jobs run.
    public enum Executor: Sendable, Equatable {
        /// A program executed directly, never through a shell: argv[0] and its fixed arguments.
        case command([String])
        /// The builtin `demo` kind.
        case demo
    }

    public var name: String
    public var executor: Executor
    /// The allow-list: param name to the regex its whole value must match.
    public var params: [String: ParamPattern]
    public var timeout: HeraldDuration?
    public var concurrency: Int?
    public var retries: Int

    /// A kind with no params, no limits and no retries.
    public init(name: String, executor: Executor, params: [String: ParamPattern] = [:],
                timeout: HeraldDuration? = nil, concurrency: Int? = nil, retries: Int = 0) {
        self.name = name
        self.executor = executor
        self.params = params
        self.timeout = timeout
        self.concurrency = concurrency
        self.retries = retries
    }
}

/// A param's regex, compiled once; it must match the whole value.
public struct ParamPattern: @unchecked Sendable {
    /// The regex as written in the configuration.
    public let source: String
    // Regex is immutable once compiled; matching from several threads is safe.
    private let regex: Regex<AnyRegexOutput>

    /// Compiles `source`; throws when it is not a valid regex.
    ///
    /// Matched one Unicode scalar at a time with ASCII classes, as in PCRE: by default Swift matches
    /// whole characters, so `.` would swallow any number of combining marks and `\d` any script's digits.
    public init(_ source: String) throws {
        self.source = source
        regex = try Regex(source).matchingSemantics(.unicodeScalar).asciiOnlyCharacterClasses()
    }

    /// Whether the regex matches all of `value` (so a trailing newline is not ignored).
    public func matchesWhole(_ value: String) -> Bool {
        (try? regex.wholeMatch(in: value)) != nil
    }
}
