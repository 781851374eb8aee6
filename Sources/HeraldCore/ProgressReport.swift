/// One line a job program wrote on fd 3: `42`, `42 rendering page 4`, or a JSON object.
public struct ProgressReport: Sendable, Equatable {
    public var progress: Double?
    public var message: String?
    public var result: JSON?

    /// A report with any of progress, message and result.
    public init(progress: Double? = nil, message: String? = nil, result: JSON? = nil) {
        self.progress = progress
        self.message = message
        self.result = result
    }

    /// The largest `result` accepted, in bytes of JSON text.
    public static let maxResultBytes = 64 * 1024

    /// Parses one line (without its LF); nil for a line that is neither form, so a stray line is ignored.
    public init?(line: some StringProtocol) {
        var text = Substring(line)
        if text.hasSuffix("\r") { text = text.dropLast() }
        let trimmed = text.drop { $0 == " " || $0 == "\t" }
        if trimmed.hasPrefix("{") {
            guard let json = try? JSON.parse(String(trimmed)), case .object = json else { return nil }
            progress = json["progress"]?.doubleValue
            message = json["message"]?.stringValue
            if let r = json["result"], r.text.utf8.count <= ProgressReport.maxResultBytes { result = r }
            guard progress != nil || message != nil || result != nil else { return nil }
            return
        }
        let number = trimmed.prefix { !($0 == " " || $0 == "\t") }
        guard let value = Double(number), value.isFinite else { return nil }
        progress = value
        let rest = trimmed.dropFirst(number.count).drop { $0 == " " || $0 == "\t" }
        message = rest.isEmpty ? nil : String(rest)
    }
}
