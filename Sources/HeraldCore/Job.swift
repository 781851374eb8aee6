/// The life of a job: `queued` → `running` → `succeeded` | `failed` | `canceled`, and `running` → `queued` for a retry.
public enum JobState: String, Sendable, CaseIterable, Codable {
    case queued, running, succeeded, failed, canceled

    /// Whether the job has ended for good.
    public var isTerminal: Bool { self == .succeeded || self == .failed || self == .canceled }
}

/// Why a job did not succeed.
public struct JobError: Sendable, Equatable {
    /// What ended the attempt.
    public enum Code: String, Sendable {
        case exitStatus = "exit_status", timeout, runnerLost = "runner_lost", spawnFailed = "spawn_failed", canceled
    }
    public var code: Code
    public var message: String

    /// An error with a code and a message for people.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
}

/// One job, as the runner writes it to its status file and the API shows it.
public struct Job: Sendable, Equatable {
    public var id: JobID
    public var kind: String
    public var state: JobState
    public var progress: Double
    public var message: String?
    public var params: [String: String]
    /// Who the job is for (SPEC §9), as the submitter said; read tokens with this `sub` cover it.
    public var owner: String?
    public var createdAt: Timestamp
    public var startedAt: Timestamp?
    public var finishedAt: Timestamp?
    public var updatedAt: Timestamp
    public var attempt: Int
    public var exitCode: Int?
    public var error: JobError?
    public var result: JSON?
    public var seq: Int

    /// A freshly submitted job: queued, first attempt, `seq` 1.
    public init(id: JobID, kind: String, params: [String: String], owner: String? = nil, now: Timestamp) {
        self.id = id
        self.kind = kind
        state = .queued
        progress = 0
        message = nil
        self.params = params
        self.owner = owner
        createdAt = now
        startedAt = nil
        finishedAt = nil
        updatedAt = now
        attempt = 1
        exitCode = nil
        error = nil
        result = nil
        seq = 1
    }
}

// MARK: - JSON

extension Job {
    /// The params as a JSON object of strings, sorted by name (the job's `params`, and a command's stdin).
    public var paramsJSON: JSON { .object(params.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }) }

    /// The job as JSON; with a `urlPrefix` the `links` object is added, as the API shows it.
    public func json(urlPrefix: String?) -> JSON {
        var members: [(String, JSON)] = [
            ("id", .string(id.text)),
            ("kind", .string(kind)),
            ("state", .string(state.rawValue)),
            ("progress", .double(progress)),
            ("message", .optional(message)),
            ("params", paramsJSON),
            ("owner", .optional(owner)),
            ("created_at", .string(createdAt.rfc3339)),
            ("started_at", .optional(startedAt?.rfc3339)),
            ("finished_at", .optional(finishedAt?.rfc3339)),
            ("updated_at", .string(updatedAt.rfc3339)),
            ("attempt", .int(attempt)),
            ("exit_code", exitCode.map(JSON.int) ?? .null),
            ("error", error.map { .object([("code", .string($0.code.rawValue)), ("message", .string($0.message))]) } ?? .null),
            ("result", result ?? .null),
            ("seq", .int(seq)),
        ]
        if let urlPrefix {
            let base = "\(urlPrefix)/\(id.text)"
            members.append(("links", .object([
                ("self", .string(base)), ("events", .string(base + "/events")),
                ("log", .string(base + "/log")), ("cancel", .string(base + "/cancel")),
            ])))
        }
        return .object(members)
    }

    /// Reads a job back from the JSON `json(urlPrefix:)` wrote; nil when anything is missing or wrong.
    public init?(json: JSON) {
        guard let idText = json["id"]?.stringValue, let id = JobID(idText),
              let kind = json["kind"]?.stringValue,
              let state = json["state"]?.stringValue.flatMap(JobState.init(rawValue:)),
              let progress = json["progress"]?.doubleValue,
              let created = json["created_at"]?.stringValue.flatMap(Timestamp.init(rfc3339:)),
              let updated = json["updated_at"]?.stringValue.flatMap(Timestamp.init(rfc3339:)),
              let attempt = json["attempt"]?.intValue, let seq = json["seq"]?.intValue,
              case let .object(paramMembers)? = json["params"]
        else { return nil }
        var params: [String: String] = [:]
        for (key, value) in paramMembers {
            guard let s = value.stringValue else { return nil }
            params[key] = s
        }
        self.init(id: id, kind: kind, params: params, owner: json["owner"]?.stringValue, now: created)
        self.state = state
        self.progress = progress
        message = json["message"]?.stringValue
        startedAt = json["started_at"]?.stringValue.flatMap(Timestamp.init(rfc3339:))
        finishedAt = json["finished_at"]?.stringValue.flatMap(Timestamp.init(rfc3339:))
        updatedAt = updated
        self.attempt = attempt
        exitCode = json["exit_code"]?.intValue
        if let e = json["error"], let code = e["code"]?.stringValue.flatMap(JobError.Code.init(rawValue:)) {
            error = JobError(code, e["message"]?.stringValue ?? "")
        }
        if let r = json["result"], r != .null { result = r }
        self.seq = seq
    }
}
