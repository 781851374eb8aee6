/// Who may submit, list, cancel and watch the dashboard: holders of a token from `submit_tokens_file`.
public struct SubmitterAuth: Sendable {
    private let tokens: [[UInt8]]
    private let anonymous: Bool

    /// Tokens from the file's text, one a line (blank lines and `#` comments skipped); `anonymous` asks for none.
    public init(tokensFileText: String?, anonymous: Bool) {
        tokens = (tokensFileText ?? "").split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: " \t\r") }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
            .map { Array($0.utf8) }
        self.anonymous = anonymous
    }

    /// Whether the request carries a valid token: `Authorization: Bearer T` or `?access_token=T`.
    public func allows(authorization: String?, accessToken: String?) -> Bool {
        if anonymous { return true }
        var presented: String?
        // The scheme name is case-insensitive (RFC 9110 §11.1): "bearer" and "BEARER" count too.
        if let authorization, authorization.utf8.count >= 7, authorization.prefix(7).lowercased() == "bearer " {
            presented = String(authorization.dropFirst(7)).trimmingCharacters(in: " \t")
        } else {
            presented = accessToken
        }
        guard let presented, !presented.isEmpty else { return false }
        let given = Array(presented.utf8)
        // Compare with every token, without stopping early, so timing tells nothing.
        var match = false
        for token in tokens { match = SubmitterAuth.constantTimeEquals(given, token) || match }
        return match
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
