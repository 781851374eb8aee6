/// A length of time as configured: `500ms`, `15s`, `30m`, `2h`, `7d`.
public struct HeraldDuration: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The length in milliseconds.
    public let milliseconds: Int64

    /// A duration of `milliseconds`.
    public init(milliseconds: Int64) { self.milliseconds = milliseconds }

    /// A duration of `seconds`.
    public static func seconds(_ seconds: Int64) -> HeraldDuration { HeraldDuration(milliseconds: seconds * 1000) }

    /// Parses `<digits><unit>` with unit `ms`, `s`, `m`, `h` or `d`; nil for anything else.
    public init?(parsing text: String) {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            let digits = text.dropLast(suffix.count)
            // `5ms` also ends in `s`: the digits check below rejects the `5m` reading.
            guard !digits.isEmpty, digits.count <= 12, digits.utf8.allSatisfy({ (48...57).contains($0) }),
                  let value = Int64(digits) else { continue }
            // `999999999999d` does not fit in Int64 milliseconds: refuse it rather than trap.
            let (scaled, overflow) = value.multipliedReportingOverflow(by: scale)
            guard !overflow else { return nil }
            milliseconds = scaled
            return
        }
        return nil
    }

    /// The duration in seconds, as a Double.
    public var seconds: Double { Double(milliseconds) / 1000 }

    public var description: String {
        for (suffix, scale) in [("d", Int64(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1000)]
        where milliseconds != 0 && milliseconds % scale == 0 {
            return "\(milliseconds / scale)\(suffix)"
        }
        return "\(milliseconds)ms"
    }

    public static func < (a: HeraldDuration, b: HeraldDuration) -> Bool { a.milliseconds < b.milliseconds }
}
