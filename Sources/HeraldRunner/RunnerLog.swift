import HeraldPOSIX

/// The runner's log: one line per event on stderr, with a level (journald and cron mail read it as is).
public enum RunnerLog {
    /// How much a line matters.
    public enum Level: String, Sendable { case info, warning, error }

    /// Writes `herald-runner: LEVEL: message` as one write, so lines from several threads never interleave.
    public static func write(_ level: Level, _ message: String) {
        try? FileDescriptor(rawValue: 2).writeAll(Array("herald-runner: \(level.rawValue): \(message)\n".utf8))
    }

    /// Logs at level info.
    public static func info(_ message: String) { write(.info, message) }
    /// Logs at level warning.
    public static func warning(_ message: String) { write(.warning, message) }
    /// Logs at level error.
    public static func error(_ message: String) { write(.error, message) }
}
