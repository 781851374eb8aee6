import Glibc

/// One line per event on stderr, with the program's name and a level (journald and tests read it).
public struct Log: Sendable {
    /// How much a line matters.
    public enum Level: String, Sendable { case debug, info, warning, error }

    /// The program name that starts every line.
    public let program: String

    public init(program: String) { self.program = program }

    /// Writes `program: level: message` as one write(2), so lines from several threads never mix.
    public func callAsFunction(_ level: Level, _ message: String) {
        let line = Array("\(program): \(level.rawValue): \(message.replacingNewlines())\n".utf8)
        _ = line.withUnsafeBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }
}

extension String {
    fileprivate func replacingNewlines() -> String {
        contains("\n") ? split(separator: "\n", omittingEmptySubsequences: false).joined(separator: " | ") : self
    }
}
