import CCrypto

/// The three libcrypto calls Herald makes, wrapped once: HMAC-SHA-256, SHA-256, and constant-time equality.
public enum Crypto {
    /// HMAC-SHA-256 of `message` under `key` (32 bytes).
    public static func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        // One-shot HMAC(): no context to free; a NULL result happens only on allocation failure.
        let ok = key.withUnsafeBufferPointer { k in
            message.withUnsafeBufferPointer { m in
                out.withUnsafeMutableBufferPointer { o in
                    HMAC(EVP_sha256(), k.baseAddress, Int32(k.count), m.baseAddress, m.count, o.baseAddress, &length) != nil
                }
            }
        }
        precondition(ok && length == 32, "HMAC-SHA-256 failed in libcrypto")
        return out
    }

    /// SHA-256 of `bytes` (32 bytes).
    public static func sha256(_ bytes: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        _ = bytes.withUnsafeBufferPointer { b in out.withUnsafeMutableBufferPointer { SHA256(b.baseAddress, b.count, $0.baseAddress) } }
        return out
    }

    /// SHA-256 as 64 lowercase hex digits.
    public static func sha256Hex(_ bytes: [UInt8]) -> String {
        sha256(bytes).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    /// Whether `a` and `b` are equal, in time that depends on their length only (CRYPTO_memcmp).
    public static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        return a.withUnsafeBytes { x in b.withUnsafeBytes { y in CRYPTO_memcmp(x.baseAddress, y.baseAddress, a.count) == 0 } }
    }
}
