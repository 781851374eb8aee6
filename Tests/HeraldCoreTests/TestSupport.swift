@testable import HeraldCore

/// Shared fixtures for the core tests.
enum Fixture {
    static let id = JobID(milliseconds: 1_764_064_800_123, random: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    static let t0 = Timestamp(milliseconds: 1_764_064_800_123)

    static func at(_ offset: Int64) -> Timestamp { Timestamp(milliseconds: t0.milliseconds + offset) }

    static func queued(kind: String = "report") -> Job {
        Job(id: id, kind: kind, params: ["month": "2026-10"], now: t0)
    }

    /// A job that has been started (seq 2, running, attempt 1).
    static func running() -> Job {
        queued().applying(.start, at: at(10), retries: 0)!
    }
}
