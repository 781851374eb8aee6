/// Milliseconds since the Unix epoch, written as RFC 3339 UTC with milliseconds.
public struct Timestamp: Hashable, Sendable, Comparable {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    public let milliseconds: Int64

    /// A timestamp at `milliseconds` since the epoch.
    public init(milliseconds: Int64) { self.milliseconds = milliseconds }

    public static func < (a: Timestamp, b: Timestamp) -> Bool { a.milliseconds < b.milliseconds }

    /// `2026-11-25T10:00:00.123Z`.
    public var rfc3339: String {
        let ms = Int(((milliseconds % 1000) + 1000) % 1000)
        let seconds = (milliseconds - Int64(ms)) / 1000
        let days = Int(seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400)
        let secOfDay = Int(seconds - Int64(days) * 86400)
        // Civil-from-days (Howard Hinnant), valid for the proleptic Gregorian calendar.
        let z = days + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        // Built as bytes, not from padded and interpolated Strings: a status write encodes four of these (issue 11, perf).
        var out: [UInt8] = []
        out.reserveCapacity(24)
        func put(_ v: Int, _ width: Int, _ then: UInt8) {
            // `String(v)` zero-padded on the left to `width`: small integers are small strings, never allocated.
            let digits = String(v).utf8
            if digits.count < width { out.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: width - digits.count)) }
            out.append(contentsOf: digits)
            out.append(then)
        }
        put(y, 4, UInt8(ascii: "-"))
        put(m, 2, UInt8(ascii: "-"))
        put(d, 2, UInt8(ascii: "T"))
        put(secOfDay / 3600, 2, UInt8(ascii: ":"))
        put(secOfDay / 60 % 60, 2, UInt8(ascii: ":"))
        put(secOfDay % 60, 2, UInt8(ascii: "."))
        put(ms, 3, UInt8(ascii: "Z"))
        return String(decoding: out, as: UTF8.self)
    }

    /// Parses the form `rfc3339` writes (UTC, `Z`, optional fraction).
    public init?(rfc3339 text: String) {
        let b = Array(text.utf8)
        func num(_ from: Int, _ len: Int) -> Int? {
            guard from + len <= b.count else { return nil }
            var v = 0
            for k in from..<from + len {
                guard (48...57).contains(b[k]) else { return nil }
                v = v * 10 + Int(b[k] - 48)
            }
            return v
        }
        guard b.count >= 20, b[4] == 45, b[7] == 45, b[10] == 84, b[13] == 58, b[16] == 58, b.last == 90,
              let y = num(0, 4), let m = num(5, 2), let d = num(8, 2), let hh = num(11, 2), let mm = num(14, 2), let ss = num(17, 2),
              (1...12).contains(m), (1...31).contains(d), hh < 24, mm < 60, ss < 61
        else { return nil }
        var ms = 0
        if b.count > 20 {
            guard b[19] == 46, b.count > 21 else { return nil }
            let digits = b.count - 21
            // At most nanoseconds: more digits would overflow `num`.
            guard digits <= 9, let frac = num(20, digits) else { return nil }
            ms = digits >= 3 ? frac / Int(pow10(digits - 3)) : frac * Int(pow10(3 - digits))
        } else if b.count != 20 {
            return nil
        }
        let yy = m <= 2 ? y - 1 : y
        let era = (yy >= 0 ? yy : yy - 399) / 400
        let yoe = yy - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146097 + doe - 719468
        milliseconds = (Int64(days) * 86400 + Int64(hh * 3600 + mm * 60 + ss)) * 1000 + Int64(ms)
    }
}

private func pow10(_ n: Int) -> Int { (0..<n).reduce(1) { acc, _ in acc * 10 } }
