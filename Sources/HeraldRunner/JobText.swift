import HeraldCore

/// Jobs as people read them on a terminal: details, one-line rows, progress lines and bars.
public enum JobText {
    /// Every field worth reading, one per line.
    public static func details(_ job: Job) -> String {
        var lines = [
            ("id", job.id.text), ("kind", job.kind), ("state", job.state.rawValue), ("attempt", String(job.attempt)),
            ("progress", percent(job.progress)),
        ]
        if let message = job.message { lines.append(("message", message)) }
        if !job.params.isEmpty {
            lines.append(("params", job.params.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")))
        }
        lines.append(("created", job.createdAt.rfc3339))
        if let started = job.startedAt { lines.append(("started", started.rfc3339)) }
        if let finished = job.finishedAt { lines.append(("finished", finished.rfc3339)) }
        lines.append(("updated", job.updatedAt.rfc3339))
        if let code = job.exitCode { lines.append(("exit code", String(code))) }
        if let error = job.error { lines.append(("error", "\(error.code.rawValue): \(error.message)")) }
        if let result = job.result { lines.append(("result", result.text)) }
        return lines.map { "\(($0.0 + ":").padding(11))\($0.1)" }.joined(separator: "\n")
    }

    /// One line for `list`: ID, state, kind, progress, message.
    public static func row(_ job: Job) -> String {
        "\(job.id.text)  \(job.state.rawValue.padding(9))  \(job.kind.padding(12))  \(percent(job.progress).padding(5))  \(job.message ?? "")"
    }

    /// A plain progress line, for a log or a pipe.
    public static func progressLine(_ job: Job) -> String {
        var line = "\(job.state.rawValue) \(percent(job.progress))"
        if let message = job.message { line += " \(message)" }
        if let error = job.error, job.state.isTerminal { line += " (\(error.code.rawValue): \(error.message))" }
        return line
    }

    /// `[#########...........]  42% message` (the state while there is no message), for a terminal line redrawn in place.
    public static func bar(_ job: Job, width: Int = 30) -> String {
        let filled = Int((job.progress / 100 * Double(width)).rounded(.down))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        return "[\(bar)] \(percent(job.progress).padding(4, left: true)) \(job.state == .running ? job.message ?? "running" : job.state.rawValue)"
    }

    static func percent(_ progress: Double) -> String { "\(Int(progress.rounded(.down)))%" }
}

extension String {
    fileprivate func padding(_ width: Int, left: Bool = false) -> String {
        let pad = String(repeating: " ", count: max(0, width - count))
        return left ? pad + self : self + pad
    }
}
