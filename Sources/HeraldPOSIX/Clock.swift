import CHeraldSys
import Glibc

/// The clocks Herald reads: wall time for timestamps, monotonic time for deadlines.
public enum Clock {
    /// Milliseconds since the Unix epoch.
    public static func wallMilliseconds() -> Int64 { read(CLOCK_REALTIME) / 1_000_000 }

    /// Monotonic nanoseconds, for measuring intervals.
    public static func monotonicNanoseconds() -> Int64 { read(CLOCK_MONOTONIC) }

    /// Monotonic milliseconds, for deadlines.
    public static func monotonicMilliseconds() -> Int64 { read(CLOCK_MONOTONIC) / 1_000_000 }

    private static func read(_ clock: clockid_t) -> Int64 {
        var ts = timespec()
        clock_gettime(clock, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    /// Sleeps for `milliseconds`.
    public static func sleep(milliseconds: Int) {
        var ts = timespec(tv_sec: milliseconds / 1000, tv_nsec: (milliseconds % 1000) * 1_000_000)
        var left = timespec()
        while nanosleep(&ts, &left) != 0 && errno == EINTR { ts = left }
    }
}

/// Bytes from the kernel's random source.
public enum RandomSource {
    /// `count` random bytes from getrandom(2).
    public static func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let n = out.withUnsafeMutableBytes { herald_getrandom($0.baseAddress! + filled, count - filled) }
            if n > 0 { filled += n } else if errno != EINTR { fatalError("getrandom: \(String(cString: strerror(errno)))") }
        }
        return out
    }
}
