import HeraldPOSIX

/// Unbuffered writes to stdout, for output that must show at once (a progress bar) and in order.
enum StandardOutput {
    static func write(_ text: String) { try? FileDescriptor(rawValue: 1).writeAll(Array(text.utf8)) }
}
