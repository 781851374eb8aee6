import HeraldCore
import Testing
@testable import HeraldTokens

/// Read tokens (SPEC §9): every refusal names its reason; only HS256 under a configured secret passes.
@Suite struct ReadTokenVerifierTests {
    static let secret = Array("0123456789abcdef0123456789abcdef".utf8)
    static let oldSecret = Array("ffffffffffffffffffffffffffffffff-old".utf8)
    static let now: Int64 = 1_800_000_000_000  // ms
    static let nowSeconds = 1_800_000_000
    static let jobA = JobID("01hx0000000000000000000000")!
    let verifier = ReadTokenVerifier(secrets: [secret])

    static func claims(_ extra: [(String, JSON)], exp: Int? = nowSeconds + 60) -> JSON {
        .object(extra + (exp.map { [("exp", JSON.int($0))] } ?? []))
    }

    static func token(_ claims: JSON, secret: [UInt8] = secret) -> String { ReadTokenSigner.sign(claims, secret: secret) }

    func refusal(_ token: String, now: Int64 = now) -> ReadTokenRefusal? {
        if case let .failure(r) = verifier.verify(token, now: now) { return r }
        return nil
    }

    @Test func anOwnerTokenCoversThatOwnersJobsOnly() throws {
        let grant = try verifier.verify(Self.token(Self.claims([("sub", .string("user-42"))])), now: Self.now).get()
        #expect(grant.owner == "user-42" && grant.dashboard == .owner("user-42"))
        var mine = Job(id: Self.jobA, kind: "demo", params: [:], owner: "user-42", now: Timestamp(milliseconds: 0))
        #expect(grant.covers(mine))
        mine.owner = "user-43"
        #expect(!grant.covers(mine))
        mine.owner = nil
        #expect(!grant.covers(mine))
    }

    @Test func aJobsTokenCoversItsJobsAndOpensNoDashboard() throws {
        let grant = try verifier.verify(Self.token(Self.claims([("jobs", .array([.string(Self.jobA.text)]))])), now: Self.now).get()
        #expect(grant.jobs == [Self.jobA] && grant.dashboard == .none)
        #expect(grant.covers(Job(id: Self.jobA, kind: "demo", params: [:], now: Timestamp(milliseconds: 0))))
        let other = JobID("01hx0000000000000000000001")!
        #expect(!grant.covers(Job(id: other, kind: "demo", params: [:], now: Timestamp(milliseconds: 0))))
    }

    @Test func anAllTokenCoversEverything() throws {
        let grant = try verifier.verify(Self.token(Self.claims([("all", .bool(true))])), now: Self.now).get()
        #expect(grant.dashboard == .everyJob)
        #expect(grant.covers(Job(id: Self.jobA, kind: "demo", params: [:], owner: "x", now: Timestamp(milliseconds: 0))))
    }

    @Test func expiryHasFiveSecondsOfLeeway() {
        let t = Self.token(Self.claims([("sub", .string("u"))], exp: Self.nowSeconds))
        #expect(refusal(t, now: Self.now + 5_000) == nil)
        #expect(refusal(t, now: Self.now + 5_001) == .expired)
        #expect(refusal(t, now: Self.now + 5_001)!.message.contains("expired"))
    }

    @Test func notBeforeAndIssuedAtInTheFutureAreNotYetValid() {
        let nbf = Self.token(Self.claims([("sub", .string("u")), ("nbf", .int(Self.nowSeconds + 6))]))
        #expect(refusal(nbf) == .notYetValid("nbf"))
        #expect(refusal(nbf)!.message.contains("not yet valid"))
        #expect(refusal(nbf, now: Self.now + 1_000) == nil)
        let iat = Self.token(Self.claims([("sub", .string("u")), ("iat", .int(Self.nowSeconds + 30))]))
        #expect(refusal(iat) == .notYetValid("iat"))
        let fine = Self.token(Self.claims([("sub", .string("u")), ("iat", .int(Self.nowSeconds + 5)), ("nbf", .int(Self.nowSeconds + 5))]))
        #expect(refusal(fine) == nil)
    }

    @Test func aWrongSignatureIsRefused() {
        let t = Self.token(Self.claims([("all", .bool(true))]), secret: Array("another-secret-of-at-least-32-bytes!".utf8))
        #expect(refusal(t) == .signature)
        #expect(refusal(t)!.message.contains("signature"))
        // The claims changed after signing: the signature no longer matches.
        let good = Self.token(Self.claims([("sub", .string("alice"))]))
        let parts = good.split(separator: ".")
        let forged = parts[0] + "." + Base64URL.encode(Array(Self.claims([("all", .bool(true))]).text.utf8)) + "." + parts[2]
        #expect(refusal(String(forged)) == .signature)
        // One flipped bit of the signature.
        var sig = Base64URL.decode(parts[2])!
        sig[0] ^= 1
        #expect(refusal(parts[0] + "." + parts[1] + "." + Base64URL.encode(sig)) == .signature)
    }

    @Test func duringARotationBothSecretsVerify() {
        let rotating = ReadTokenVerifier(secrets: [Self.secret, Self.oldSecret])
        for s in [Self.secret, Self.oldSecret] {
            #expect((try? rotating.verify(Self.token(Self.claims([("sub", .string("u"))]), secret: s), now: Self.now).get()) != nil)
        }
        #expect(refusal(Self.token(Self.claims([("sub", .string("u"))]), secret: Self.oldSecret)) == .signature)
    }

    @Test func algNoneAndEveryOtherAlgorithmAreRefusedBeforeTheSignature() {
        let claims = Self.claims([("all", .bool(true))])
        let body = Base64URL.encode(Array(claims.text.utf8))
        for alg in ["none", "None", "RS256", "HS384", "HS512", "ES256", "hs256"] {
            let header = Base64URL.encode(Array(JSON.object([("alg", .string(alg)), ("typ", .string("JWT"))]).text.utf8))
            #expect(refusal(header + "." + body + ".") == .algorithm(alg), "alg \(alg)")
            // Even validly HMAC-signed with the secret: the header's algorithm decides.
            let signed = ReadTokenSigner.sign(header: .object([("alg", .string(alg))]), claims: claims, secret: Self.secret)
            #expect(refusal(signed)?.message.contains("algorithm") == true)
        }
        let noAlg = ReadTokenSigner.sign(header: .object([("typ", .string("JWT"))]), claims: claims, secret: Self.secret)
        #expect(refusal(noAlg)?.message.contains("algorithm") == true)
        let numeric = ReadTokenSigner.sign(header: .object([("alg", .int(256))]), claims: claims, secret: Self.secret)
        #expect(refusal(numeric)?.message.contains("algorithm") == true)
    }

    @Test(arguments: ["", ".", "..", "a.b", "a.b.c.d", "abc", "!!!.e30.AAAA", "e30=.e30.AAAA", "bnVsbA.e30.AAAA", "W10.e30.AAAA"])
    func garbageIsMalformed(_ text: String) {
        #expect(refusal(text)?.message.contains("malformed") == true, "\(text)")
    }

    @Test func truncatedTokensAreRefusedNeverAccepted() {
        let t = Self.token(Self.claims([("sub", .string("u"))]))
        for n in 0..<t.count {
            let cut = String(t.prefix(n))
            guard let r = refusal(cut) else { Issue.record("accepted a token cut to \(n)"); continue }
            #expect(r.message.contains("malformed") || r == .signature, "\(n): \(r)")
        }
    }

    @Test func aHugeTokenIsMalformedWithoutWork() {
        let huge = Self.token(Self.claims([("sub", .string("u")), ("pad", .string(String(repeating: "x", count: 10_000)))]))
        #expect(refusal(huge) == .malformed("longer than 4096 bytes"))
        #expect(refusal(String(repeating: "A", count: 1 << 20))?.message.contains("malformed") == true)
    }

    @Test(arguments: [
        [("sub", JSON.string("u")), ("exp", .string("1800000060"))],
        [("sub", .string("u")), ("exp", .null)],
        [("sub", .string("u")), ("exp", .bool(true))],
        [("sub", .string("u"))],
        [("sub", .int(42)), ("exp", .int(1_800_000_060))],
        [("sub", .string("")), ("exp", .int(1_800_000_060))],
        [("sub", .string("a b")), ("exp", .int(1_800_000_060))],
        [("jobs", .string("01hx0000000000000000000000")), ("exp", .int(1_800_000_060))],
        [("jobs", .array([.int(1)])), ("exp", .int(1_800_000_060))],
        [("jobs", .array([.string("../../etc")])), ("exp", .int(1_800_000_060))],
        [("all", .string("true")), ("exp", .int(1_800_000_060))],
        [("all", .int(1)), ("exp", .int(1_800_000_060))],
        [("all", .bool(false)), ("exp", .int(1_800_000_060))],
        [("jobs", .array([])), ("exp", .int(1_800_000_060))],
        [("exp", .int(1_800_000_060))],
        [("sub", .string("u")), ("exp", .int(1_800_000_060)), ("nbf", .string("0"))],
        [("sub", .string("u")), ("exp", .int(1_800_000_060)), ("iat", .array([]))],
    ] as [[(String, JSON)]])
    func wrongClaimTypesAreMalformed(_ members: [(String, JSON)]) {
        let r = refusal(Self.token(.object(members)))
        #expect(r?.message.contains("malformed") == true, "\(members): \(String(describing: r))")
    }

    @Test func claimsThatAreNotAnObjectAreMalformed() {
        for claims in [JSON.array([]), .string("x"), .null, .int(3)] {
            #expect(refusal(Self.token(claims))?.message.contains("malformed") == true)
        }
    }

    @Test func aCritHeaderIsRefused() {
        let t = ReadTokenSigner.sign(header: .object([("alg", .string("HS256")), ("crit", .array([.string("b64")]))]),
                                     claims: Self.claims([("all", .bool(true))]), secret: Self.secret)
        #expect(refusal(t)?.message.contains("malformed") == true)
    }

    @Test func aTokenMintedElsewhereVerifies() throws {
        // {"sub": "user-42", "exp": 1800000060} signed by Python's hmac + base64 (PyJWT's byte layout).
        let t = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyLTQyIiwiZXhwIjoxODAwMDAwMDYwfQ.OuiwVFAdO97ImKHUBtIQE_SxyIO-DtuMItMq5l11-ko"
        #expect(try verifier.verify(t, now: Self.now).get().owner == "user-42")
    }

    @Test func mintedClaimsRoundTrip() throws {
        let grant = ReadToken(owner: "u", jobs: [Self.jobA], all: false, expires: Double(Self.nowSeconds + 3600))
        let back = try verifier.verify(ReadTokenSigner.sign(grant.claims(issuedAt: Int64(Self.nowSeconds)), secret: Self.secret), now: Self.now).get()
        #expect(back == grant)
    }
}

@Suite struct CryptoTests {
    @Test func hmacSHA256MatchesRFC4231TestCase2() {
        let mac = Crypto.hmacSHA256(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))
        #expect(mac.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
            == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test func sha256OfABC() {
        #expect(Crypto.sha256Hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func constantTimeEquality() {
        #expect(Crypto.constantTimeEquals([1, 2, 3], [1, 2, 3]))
        #expect(!Crypto.constantTimeEquals([1, 2, 3], [1, 2, 4]))
        #expect(!Crypto.constantTimeEquals([1, 2], [1, 2, 3]))
        #expect(Crypto.constantTimeEquals([], []))
    }

    @Test func base64URLRoundTripsAndRefusesPaddingAndStrayBits() {
        for n in 0..<40 {
            let bytes = (0..<n).map { UInt8(truncatingIfNeeded: $0 * 37 + 11) }
            #expect(Base64URL.decode(Base64URL.encode(bytes)[...]) == bytes)
        }
        #expect(Base64URL.encode(Array("hi?".utf8)) == "aGk_")
        #expect(Base64URL.decode("aGk=") == nil)
        #expect(Base64URL.decode("aGl") == nil)  // stray bits: 'l' is not a canonical last character
        #expect(Base64URL.decode("a") == nil)
    }

    @Test func secretFilesLoseOneTrailingNewlineAndMustHold32Bytes() throws {
        let key = Array(String(repeating: "k", count: 32).utf8)
        #expect(try ReadTokenSecret.parse(key + [10]).get() == key)
        #expect(try ReadTokenSecret.parse(key + [10, 10]).get() == key + [10])
        #expect(try ReadTokenSecret.parse(key).get() == key)
        guard case let .failure(e) = ReadTokenSecret.parse(Array(key.dropLast()) + [10]) else { Issue.record("31 bytes accepted"); return }
        #expect(e.byteCount == 31 && e.description.contains("at least 32"))
    }
}
