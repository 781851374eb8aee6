import HeraldCore

/// What a NOTIFY payload on the `herald` channel says: a letter for the kind of change, then ids.
///
/// Ids only, never jobs: a payload is capped at 8000 bytes, and readers fetch what changed in
/// batches anyway. A statement that touches many jobs (gc) sends several payloads.
enum ChangeNotice: Character, Sendable, CaseIterable {
    case job = "j", log = "l", cancelRequested = "c", submitted = "s"

    /// The channel it goes on: what runners act on apart from what only web nodes follow.
    var channel: String {
        switch self {
        case .submitted, .cancelRequested: Schema.channel
        case .job, .log: Schema.changesChannel
        }
    }

    /// The payload's limit, with room to spare below PostgreSQL's 8000 bytes.
    static let maxPayloadBytes = 7900

    /// Payloads naming `ids`, each under `maxPayloadBytes`.
    func payloads(_ ids: [JobID]) -> [String] {
        var payloads: [String] = []
        var current = String(rawValue)
        for id in ids {
            if current.utf8.count + 1 + id.text.utf8.count > ChangeNotice.maxPayloadBytes {
                payloads.append(current)
                current = String(rawValue)
            }
            current += " " + id.text
        }
        if current.count > 1 { payloads.append(current) }
        return payloads
    }

    /// The kind and ids a payload names; nil for anything else (another program on the channel).
    static func parse(_ payload: String) -> (ChangeNotice, [JobID])? {
        let fields = payload.split(separator: " ")
        guard let first = fields.first, first.count == 1, let notice = ChangeNotice(rawValue: first.first!) else { return nil }
        let ids = fields.dropFirst().compactMap { JobID($0) }
        guard ids.count == fields.count - 1 else { return nil }
        return (notice, ids)
    }
}
