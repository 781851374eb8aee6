import HeraldCore

/// Why a read token was refused; `message` names it with the words SPEC §9 promises.
public enum ReadTokenRefusal: Error, Equatable, Sendable {
    case malformed(String)
    case algorithm(String)
    case signature
    case expired
    case notYetValid(String)

    /// The 401's message.
    public var message: String {
        switch self {
        case let .malformed(why): return "the read token is malformed: \(why)"
        case let .algorithm(alg): return "the read token's algorithm \(alg) is not accepted (only HS256)"
        case .signature: return "the read token's signature does not match (forged, or signed with another secret)"
        case .expired: return "the read token has expired; get a new one"
        case let .notYetValid(claim): return "the read token is not yet valid (\(claim) is in the future)"
        }
    }
}

/// Verifies read tokens: JWTs signed HS256 (RFC 7519) with one of up to two secrets.
///
/// Pure but for HMAC: the time is passed in. Checks, in this order, so nothing unsigned is
/// parsed beyond its header: size and shape, the header's `alg` (pinned to HS256: `none`,
/// RS256 and the rest are refused before any key is used), the signature (constant time,
/// against each secret), then the claims: `exp` required, `nbf` and `iat` honoured, all with
/// `leeway` seconds of clock skew, and at least one of `sub`, `jobs`, `all: true`.
public struct ReadTokenVerifier: Sendable {
    /// The longest token looked at; a cookie is at most 4096 bytes anyway.
    public static let maxTokenBytes = 4096
    /// The most job ids one token may list.
    public static let maxJobs = 1000
    /// Seconds of clock skew tolerated on every time claim.
    public static let leewaySeconds = 5.0

    private let secrets: [[UInt8]]

    /// A verifier accepting tokens signed with any of `secrets` (the new one first during a rotation).
    public init(secrets: [[UInt8]]) {
        precondition(!secrets.isEmpty, "a verifier needs a secret")
        self.secrets = secrets
    }

    /// The grant of `token` at `now` (milliseconds since the epoch), or why it is refused.
    public func verify(_ token: String, now: Int64) -> Result<ReadToken, ReadTokenRefusal> {
        let bytes = Array(token.utf8)
        guard bytes.count <= ReadTokenVerifier.maxTokenBytes else {
            return .failure(.malformed("longer than \(ReadTokenVerifier.maxTokenBytes) bytes"))
        }
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return .failure(.malformed("a JWT has three dot-separated parts")) }
        guard let headerBytes = Base64URL.decode(parts[0]), case let .object(header)? = try? JSON.parse(headerBytes) else {
            return .failure(.malformed("the header is not base64url JSON"))
        }
        let headerJSON = JSON.object(header)
        guard let alg = headerJSON["alg"]?.stringValue else { return .failure(.algorithm("(none given)")) }
        guard alg == "HS256" else { return .failure(.algorithm(String(alg.prefix(20)))) }
        if headerJSON["crit"] != nil { return .failure(.malformed("critical header extensions are not supported")) }
        guard let signature = Base64URL.decode(parts[2]) else { return .failure(.malformed("the signature is not base64url")) }
        let signed = Array(bytes[..<(parts[0].utf8.count + 1 + parts[1].utf8.count)])
        // Every secret is tried, without stopping at a match.
        var valid = false
        for secret in secrets { valid = Crypto.constantTimeEquals(Crypto.hmacSHA256(key: secret, message: signed), signature) || valid }
        guard valid else { return .failure(.signature) }
        guard let payloadBytes = Base64URL.decode(parts[1]), let claims = try? JSON.parse(payloadBytes), case .object = claims else {
            return .failure(.malformed("the claims are not base64url JSON"))
        }
        return ReadTokenVerifier.grant(of: claims, now: Double(now) / 1000)
    }

    /// The grant of signed claims at `now` (seconds): the decision alone, no cryptography.
    static func grant(of claims: JSON, now: Double) -> Result<ReadToken, ReadTokenRefusal> {
        let leeway = leewaySeconds
        func time(_ name: String) -> Result<Double?, ReadTokenRefusal> {
            guard let value = claims[name] else { return .success(nil) }
            guard let t = value.doubleValue, t.isFinite else { return .failure(.malformed("'\(name)' must be a number of seconds")) }
            return .success(t)
        }
        let exp: Double, nbf: Double?, iat: Double?
        switch (time("exp"), time("nbf"), time("iat")) {
        case let (.success(e?), .success(n), .success(i)): (exp, nbf, iat) = (e, n, i)
        case (.success(nil), _, _): return .failure(.malformed("'exp' is required"))
        case let (.failure(f), _, _), let (_, .failure(f), _), let (_, _, .failure(f)): return .failure(f)
        }
        if now > exp + leeway { return .failure(.expired) }
        if let nbf, now + leeway < nbf { return .failure(.notYetValid("nbf")) }
        if let iat, now + leeway < iat { return .failure(.notYetValid("iat")) }

        var token = ReadToken(expires: exp)
        if let sub = claims["sub"] {
            guard let owner = sub.stringValue, JobOwner.isValid(owner) else {
                return .failure(.malformed("'sub' must be an owner: 1-\(JobOwner.maxLength) of A-Z a-z 0-9 . _ : @ -"))
            }
            token.owner = owner
        }
        if let jobs = claims["jobs"] {
            guard case let .array(items) = jobs, items.count <= maxJobs else {
                return .failure(.malformed("'jobs' must be a list of at most \(maxJobs) job ids"))
            }
            for item in items {
                guard let id = item.stringValue.flatMap({ JobID($0) }) else { return .failure(.malformed("'jobs' holds something that is not a job id")) }
                token.jobs.insert(id)
            }
        }
        if let all = claims["all"] {
            guard case let .bool(flag) = all else { return .failure(.malformed("'all' must be true or false")) }
            token.all = flag
        }
        guard token.all || token.owner != nil || !token.jobs.isEmpty else {
            return .failure(.malformed("it grants nothing: give 'sub', 'jobs' or 'all': true"))
        }
        return .success(token)
    }
}

/// Signs read tokens (herald-runner token, tests): the other half of `ReadTokenVerifier`.
public enum ReadTokenSigner {
    /// The HS256 JWT for `claims` under `secret`.
    public static func sign(_ claims: JSON, secret: [UInt8]) -> String {
        sign(header: .object([("alg", .string("HS256")), ("typ", .string("JWT"))]), claims: claims, secret: secret)
    }

    /// A JWT with any header (tests forge `alg: none` and the like with it).
    public static func sign(header: JSON, claims: JSON, secret: [UInt8]) -> String {
        let input = Base64URL.encode(Array(header.text.utf8)) + "." + Base64URL.encode(Array(claims.text.utf8))
        return input + "." + Base64URL.encode(Crypto.hmacSHA256(key: secret, message: Array(input.utf8)))
    }
}

/// The secret of `read_token_secret_file`: the file's bytes with one trailing newline removed.
public enum ReadTokenSecret {
    /// The fewest bytes a secret may have (HS256's key strength).
    public static let minimumBytes = 32

    /// The secret in a file's `bytes`, or a message saying why it cannot be one.
    public static func parse(_ bytes: [UInt8]) -> Result<[UInt8], ReadTokenSecretError> {
        var secret = bytes
        if secret.last == UInt8(ascii: "\n") { secret.removeLast() }
        guard secret.count >= minimumBytes else { return .failure(ReadTokenSecretError(byteCount: secret.count)) }
        return .success(secret)
    }
}

/// A secret file too short to sign with.
public struct ReadTokenSecretError: Error, Equatable, Sendable, CustomStringConvertible {
    public let byteCount: Int
    public var description: String {
        "holds \(byteCount) bytes; a read token secret needs at least \(ReadTokenSecret.minimumBytes) (e.g. `openssl rand -hex 32`)"
    }
}
