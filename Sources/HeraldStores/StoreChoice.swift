import HeraldCore
import HeraldPostgresStore
import HeraldStore

/// The one place where a configuration becomes a store: `database_url` set → PostgreSQL, else the
/// state directory. Both executables open their store here; nothing else constructs one but tests.
public struct StoreChoice: Sendable {
    /// The store the configuration names.
    public let store: any RunnerStore
    /// What to warn the operator about the store (a state directory on FUSE), or nil.
    public let warning: String?
    /// The largest submission the store's runners take (the directory's new/ is read with a limit), or nil for any.
    public let maxSubmissionBytes: Int?
    /// The store in a log line: the state directory's path, or "PostgreSQL" (never the URL: it may hold a password).
    public let description: String
    /// Why the database could not be reached at start, when opened `waitingForDatabase`; nil when it could.
    public let unreachable: String?
    private let admission: @Sendable (Job) -> Bool

    /// A store, and what the programs need to know of it beyond the seam.
    init(store: any RunnerStore, warning: String? = nil, maxSubmissionBytes: Int? = nil, description: String,
         unreachable: String? = nil, admission: @escaping @Sendable (Job) -> Bool = { _ in true }) {
        self.store = store
        self.warning = warning
        self.maxSubmissionBytes = maxSubmissionBytes
        self.description = description
        self.unreachable = unreachable
        self.admission = admission
    }

    /// Whether the store's runners will take this submission (the CLI asks, or an accepted job would be refused later).
    public func admits(_ job: Job) -> Bool { admission(job) }

    /// Opens the store `config` names. With `create`, makes what is missing (the runner does; the web side only checks).
    /// With `waitingForDatabase` (the daemons), an unreachable PostgreSQL is no error: see `unreachable`.
    public static func open(_ config: Config, create: Bool, waitingForDatabase: Bool = false) throws(StoreError) -> StoreChoice {
        guard let url = config.databaseURL else { return try directory(config, create: create) }
        return try postgres(url: url, waitingForDatabase: waitingForDatabase)
    }

    private static func directory(_ config: Config, create: Bool) throws(StoreError) -> StoreChoice {
        let store = try DirectoryStore(root: config.stateDir, create: create, maxBodyBytes: config.maxBodyBytes)
        return StoreChoice(store: store, warning: store.filesystemWarning, maxSubmissionBytes: store.maxSubmissionBytes,
                           description: "state directory \(config.stateDir)", admission: store.admitsSubmission)
    }

    private static func postgres(url: String, waitingForDatabase: Bool) throws(StoreError) -> StoreChoice {
        let program = CommandLine.arguments.first.map { String($0.split(separator: "/").last ?? "herald") } ?? "herald"
        let store = try PostgresStore(conninfo: url, applicationName: program, waitingForDatabase: waitingForDatabase)
        return StoreChoice(store: store, description: "PostgreSQL", unreachable: store.unreachableAtStart)
    }
}
