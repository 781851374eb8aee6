import HeraldAPI
import Testing

@Suite struct SubmitterAuthTests {
    let auth = SubmitterAuth(tokensFileText: "# deploy tokens\nalpha-123\n\n  beta-456  \n", anonymous: false)

    @Test func bearerHeaderWithAListedTokenIsAccepted() {
        #expect(auth.allows(authorization: "Bearer alpha-123"))
        #expect(auth.allows(authorization: "Bearer beta-456"))
    }

    @Test(arguments: ["bearer alpha-123", "BEARER alpha-123", "bEaReR beta-456"])
    func theSchemeNameIsCaseInsensitive(_ header: String) {
        #expect(auth.allows(authorization: header))
    }

    @Test(arguments: [nil, "", "Bearer", "Bearer ", "Bearer alpha-12", "Bearer alpha-1234", "Basic alpha-123", "Bearer ALPHA-123",
                      "Bearer # deploy tokens"])
    func otherAuthorizationsAreRefused(_ header: String?) {
        #expect(!auth.allows(authorization: header))
    }

    @Test func emptyTokensFileLetsNobodyIn() {
        let none = SubmitterAuth(tokensFileText: "\n# nothing\n", anonymous: false)
        #expect(!none.allows(authorization: "Bearer "))
        #expect(!none.allows(authorization: "Bearer x"))
    }

    @Test func anonymousSubmitAsksForNothing() {
        #expect(SubmitterAuth(tokensFileText: nil, anonymous: true).allows(authorization: nil))
    }
}
