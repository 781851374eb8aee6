/// A job's owner (SPEC §9): 1–128 characters of `[A-Za-z0-9._:@-]`, e.g. `user-42`.
public enum JobOwner {
    /// The longest owner accepted.
    public static let maxLength = 128

    /// Whether `text` is a valid owner.
    public static func isValid(_ text: String) -> Bool {
        (1...maxLength).contains(text.utf8.count) && text.utf8.allSatisfy { b in
            (48...57).contains(b) || (65...90).contains(b) || (97...122).contains(b)
                || b == UInt8(ascii: ".") || b == UInt8(ascii: "_") || b == UInt8(ascii: ":") || b == UInt8(ascii: "@")
                || b == UInt8(ascii: "-")
        }
    }
}
