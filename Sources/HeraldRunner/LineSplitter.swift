/// Splits a byte stream into LF-terminated lines; a line longer than `maxLineBytes` is dropped whole,
/// so a program cannot make the runner buffer without bound. Pure.
public struct LineSplitter: Sendable {
    /// The longest line kept, without its LF.
    public let maxLineBytes: Int
    private var partial: [UInt8] = []
    private var overlong = false

    /// A splitter keeping lines up to `maxLineBytes` (the default fits a 64 KiB result with room to spare).
    public init(maxLineBytes: Int = 256 * 1024) { self.maxLineBytes = maxLineBytes }

    /// The complete lines in `bytes` and what came before them.
    public mutating func feed(_ bytes: some Collection<UInt8>) -> [String] {
        var lines: [String] = []
        for byte in bytes {
            if byte == UInt8(ascii: "\n") {
                if !overlong { lines.append(String(decoding: partial, as: UTF8.self)) }
                partial.removeAll(keepingCapacity: true)
                overlong = false
            } else if !overlong {
                partial.append(byte)
                if partial.count > maxLineBytes {
                    overlong = true
                    partial.removeAll()
                }
            }
        }
        return lines
    }

    /// The last line when the stream ended without a LF.
    public mutating func finish() -> String? {
        defer { partial.removeAll() }
        return partial.isEmpty || overlong ? nil : String(decoding: partial, as: UTF8.self)
    }
}
