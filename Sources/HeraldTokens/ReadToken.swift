import HeraldCore

/// What a verified read token lets its holder read (SPEC §9): an owner's jobs, listed jobs, or every job.
public struct ReadToken: Sendable, Equatable {
    /// `sub`: every job of this owner.
    public var owner: String?
    /// `jobs`: these jobs.
    public var jobs: Set<JobID>
    /// `all: true`: every job (the dashboard).
    public var all: Bool
    /// `exp`, in seconds since the epoch.
    public var expires: Double

    /// A token's grant; `expires` in seconds since the epoch.
    public init(owner: String? = nil, jobs: Set<JobID> = [], all: Bool = false, expires: Double) {
        self.owner = owner
        self.jobs = jobs
        self.all = all
        self.expires = expires
    }

    /// When the token stops being accepted (`exp` plus the leeway), in wall-clock milliseconds.
    public var lapsesAtMilliseconds: Int64 {
        let ms = (expires + ReadTokenVerifier.leewaySeconds) * 1000
        return ms >= 9e18 ? .max : Int64(max(ms, 0))
    }

    /// Whether the token lets its holder read `job`.
    public func covers(_ job: Job) -> Bool {
        all || jobs.contains(job.id) || (owner != nil && job.owner == owner)
    }

    /// What `GET /jobs/events` (no `ids`) streams for this token.
    public var dashboard: ReadTokenDashboard {
        if all { return .everyJob }
        if let owner { return .owner(owner) }
        return .none
    }

    /// The JWT claims of this grant, issued at `now` (seconds since the epoch).
    public func claims(issuedAt now: Int64) -> JSON {
        var members: [(String, JSON)] = []
        if let owner { members.append(("sub", .string(owner))) }
        if !jobs.isEmpty { members.append(("jobs", .array(jobs.sorted().map { .string($0.text) }))) }
        if all { members.append(("all", .bool(true))) }
        members.append(("iat", .int(Int(now))))
        members.append(("exp", .int(Int(expires))))
        return .object(members)
    }
}

/// The dashboard stream a read token opens.
public enum ReadTokenDashboard: Equatable, Sendable {
    /// `all: true`: every job.
    case everyJob
    /// `sub`: that owner's jobs.
    case owner(String)
    /// Only `jobs`: no dashboard (use `ids=`).
    case none
}
