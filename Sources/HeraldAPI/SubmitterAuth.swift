/// Who may submit, list, cancel and watch the dashboard: holders of a token from `submit_tokens_file`.
public struct SubmitterAuth: Sendable {
    private let tokens: [[UInt8]]
    /// `allow_anonymous_submit`: no token is asked to submit.
    public let anonymous: Bool

    /// Tokens from the file's text, one a line (blank lines and `#` comments skipped); `anonymous` asks for none.
    public init(tokensFileText: String?, anonymous: Bool) {
        tokens = (tokensFileText ?? "").split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: " \t\r") }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
            .map { Array($0.utf8) }
        self.anonymous = anonymous
    }

    /// Whether the request carries a valid token as `Authorization: Bearer T` (never in the query: SPEC §3).
    public func allows(authorization: String?) -> Bool {
        anonymous || listedToken(authorization) != nil
    }

    /// The token of the file that `Authorization: Bearer T` presents, or nil (idempotency keys are scoped by it).
    public func listedToken(_ authorization: String?) -> [UInt8]? {
        guard let presented = SubmitterAuth.bearer(authorization), !presented.isEmpty else { return nil }
        let given = Array(presented.utf8)
        // Compare with every token, without stopping early, so timing tells nothing.
        var match: [UInt8]?
        for token in tokens where SubmitterAuth.constantTimeEquals(given, token) { match = token }
        return match
    }

    /// The credentials of an `Authorization: Bearer T` header, or nil for any other header.
    public static func bearer(_ authorization: String?) -> String? {
        // The scheme name is case-insensitive (RFC 9110 §11.1): "bearer" and "BEARER" count too.
        guard let authorization, authorization.utf8.count >= 7, authorization.prefix(7).lowercased() == "bearer " else { return nil }
        return String(authorization.dropFirst(7)).trimmingCharacters(in: " \t")
    }

    /// Equality whose time depends only on the lengths, not on where the bytes differ.
    static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var diff = UInt8(a.count == b.count ? 0 : 1)
        for i in 0..<max(a.count, b.count) {
            diff |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return diff == 0
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> String {
        String(drop { set.contains($0) }.reversed().drop { set.contains($0) }.reversed())
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> String { self[...].trimmingCharacters(in: set) }
}
