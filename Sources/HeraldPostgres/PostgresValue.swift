import Glibc

/// A statement parameter: text, raw bytes (sent in binary, for `bytea`), or NULL.
public enum PostgresValue: Sendable, Equatable {
    case text(String)
    case bytes([UInt8])
    case null

    /// An integer, as text.
    public static func int(_ value: some BinaryInteger) -> PostgresValue { .text(String(value)) }
    /// Text, or NULL for nil.
    public static func optional(_ value: String?) -> PostgresValue { value.map(PostgresValue.text) ?? .null }
    /// An integer, or NULL for nil.
    public static func optional(_ value: (some BinaryInteger)?) -> PostgresValue { value.map { .int($0) } ?? .null }
    /// A list of texts, as a PostgreSQL array literal (for `= ANY($n::text[])`).
    public static func textArray(_ values: [String]) -> PostgresValue {
        .text("{" + values.map { "\"" + $0.replacingAll("\\", with: "\\\\").replacingAll("\"", with: "\\\"") + "\"" }.joined(separator: ",") + "}")
    }

    /// The malloc'd bytes libpq reads, their length and format (0 text, 1 binary); freed by the caller.
    func buffer() -> (pointer: UnsafeMutablePointer<CChar>?, length: Int32, format: Int32) {
        switch self {
        case .null:
            return (nil, 0, 0)
        case let .text(string):
            return (strdup(string), 0, 0)
        case let .bytes(bytes):
            let pointer = malloc(max(1, bytes.count))!.assumingMemoryBound(to: CChar.self)
            bytes.withUnsafeBytes { raw in
                if let base = raw.baseAddress { memcpy(pointer, base, bytes.count) }
            }
            return (pointer, Int32(bytes.count), 1)
        }
    }
}

extension String {
    fileprivate func replacingAll(_ target: Character, with replacement: String) -> String {
        var out = ""
        for c in self { if c == target { out += replacement } else { out.append(c) } }
        return out
    }
}
