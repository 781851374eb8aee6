/// A job's ID: 26 lowercase Crockford base32 characters, a 48-bit millisecond time then 80 random bits.
///
/// IDs sort by creation time, and the random part makes them capabilities:
/// knowing an ID is what lets a browser watch a job.
public struct JobID: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The 26-character text.
    public let text: String

    static let alphabet = Array("0123456789abcdefghjkmnpqrstvwxyz".utf8)

    /// Validates `text` without any other effect: the only way from untrusted text to an ID.
    // Inlinable so callers in other modules get it specialized for their string type: listing a state
    // directory parses every file name, and the unspecialized generic walk cost ~2 µs a name.
    @inlinable
    public init?(_ text: some StringProtocol) {
        let utf8 = text.utf8
        guard utf8.count == 26, utf8.allSatisfy(JobID.isAlphabetByte) else { return nil }
        self.text = String(text)
    }

    /// Whether `byte` is one of the alphabet's: a digit or a lowercase letter other than i, l, o, u.
    @usableFromInline
    static func isAlphabetByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return true
        case UInt8(ascii: "i"), UInt8(ascii: "l"), UInt8(ascii: "o"), UInt8(ascii: "u"): return false
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return true
        default: return false
        }
    }

    /// Builds an ID from a millisecond time and 10 random bytes.
    public init(milliseconds: UInt64, random: [UInt8]) {
        precondition(random.count == 10, "a job ID takes 80 random bits")
        // 130 bits of text for 128 of data: the two top bits are zero, as in ULID.
        var value = [UInt8](repeating: 0, count: 16)
        for k in 0..<6 { value[k] = UInt8(truncatingIfNeeded: milliseconds >> (8 * (5 - k))) }
        for k in 0..<10 { value[6 + k] = random[k] }
        var chars = [UInt8](repeating: 0, count: 26)
        var bitIndex = -2  // start two bits before the data
        for c in 0..<26 {
            var v = 0
            for _ in 0..<5 {
                v <<= 1
                if bitIndex >= 0 { v |= Int(value[bitIndex / 8] >> (7 - bitIndex % 8)) & 1 }
                bitIndex += 1
            }
            chars[c] = JobID.alphabet[v]
        }
        text = String(decoding: chars, as: UTF8.self)
    }

    /// The creation time in milliseconds since the epoch, read from the ID.
    public var milliseconds: UInt64 {
        var v: UInt64 = 0
        // 10 characters are 50 bits: the two zero pad bits on top, then the 48-bit time (no shift).
        for b in text.utf8.prefix(10) { v = v << 5 | UInt64(JobID.alphabet.firstIndex(of: b)!) }
        return v
    }

    public var description: String { text }
    public static func < (a: JobID, b: JobID) -> Bool { a.text < b.text }
}
