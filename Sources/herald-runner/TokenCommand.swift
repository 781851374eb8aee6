import ArgumentParser
import HeraldCore
import HeraldPOSIX
import HeraldTokens

/// `herald-runner token --owner X | --job ID... | --all [--ttl 1h]`: mints a read token (SPEC §9).
struct TokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Print a read token (an HS256 JWT) signed with read_token_secret_file.",
        discussion: "A browser holding it may read the jobs it covers until it expires: give it the shortest TTL that works.")

    @OptionGroup var options: ConfigOption

    @Option(help: "Cover every job of this owner (the token's `sub`); opens that owner's stream.")
    var owner: String?

    @Option(name: .customLong("job"), help: "Cover this job (repeatable).")
    var jobs: [String] = []

    @Flag(help: "Cover every job (the dashboard).")
    var all = false

    @Option(help: "How long the token is valid: 90s, 15m, 1h, 7d.")
    var ttl = "1h"

    func validate() throws {
        let grants = (owner == nil ? 0 : 1) + (jobs.isEmpty ? 0 : 1) + (all ? 1 : 0)
        guard grants == 1 else { throw ValidationError("give exactly one of --owner X, --job ID (repeatable) or --all") }
        if let owner, !JobOwner.isValid(owner) {
            throw ValidationError("--owner must be 1-\(JobOwner.maxLength) characters from A-Z a-z 0-9 . _ : @ -, not '\(owner.prefix(140))'")
        }
        for job in jobs where JobID(job) == nil { throw ValidationError("'\(job.prefix(40))' is not a job ID") }
        guard let duration = HeraldDuration(parsing: ttl), duration.milliseconds >= 1000 else {
            throw ValidationError("--ttl takes a duration of at least 1s, e.g. 15m or 1h, not '\(ttl)'")
        }
    }

    func run() throws {
        let config = try options.load()
        guard !config.readTokenSecretFiles.isEmpty else {
            throw Exit.failure(.badConfig, "read_token_secret_file is not set in the configuration: there is no secret to sign with")
        }
        let secrets: [[UInt8]]
        switch ReadTokenSecret.load(config.readTokenSecretFiles) {
        case let .success(s): secrets = s
        case let .failure(error): throw Exit.failure(.badConfig, "\(error)")
        }
        let now = Clock.wallMilliseconds() / 1000
        let ttlSeconds = HeraldDuration(parsing: ttl)!.milliseconds / 1000
        let grant = ReadToken(owner: owner, jobs: Set(jobs.compactMap { JobID($0) }), all: all, expires: Double(now + ttlSeconds))
        // The first file holds the newest secret during a rotation: sign with it.
        print(ReadTokenSigner.sign(grant.claims(issuedAt: now), secret: secrets[0]))
    }
}
