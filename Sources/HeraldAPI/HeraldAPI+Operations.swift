import HeraldCore
import HeraldStore
import Synchronization

/// Requests answered, by route and status, for /metrics.
public final class RequestCounters: Sendable {
    private let counts = Mutex<[String: [Int: Int]]>([:])
    /// Plain answers given up because the web server took none of them within the write bound, or was gone.
    public let abandonedAnswers = Atomic<Int>(0)

    public init() {}

    func count(route: String, status: Int) {
        counts.withLock { $0[route, default: [:]][status, default: 0] += 1 }
    }

    var snapshot: [String: [Int: Int]] { counts.withLock { $0 } }
}

extension HeraldAPI {
    func jobCounts() -> [(JobState, Int)] {
        let counts = (try? store.jobCounts()) ?? [:]
        return JobState.allCases.map { state in (state, counts[state] ?? 0) }
    }

    func health() -> APIResponse {
        let counts = jobCounts()
        return .json(200, .object([
            ("ok", .bool(true)),
            ("streams", .int(metrics.openStreams.load(ordering: .relaxed))),
            ("jobs", .object(counts.map { ($0.0.rawValue, .int($0.1)) })),
        ]))
    }

    func prometheus() -> APIResponse {
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, Int)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (labels, value) in samples { out += "\(name)\(labels) \(value)\n" }
        }
        metric("herald_open_streams", "gauge", "Event streams open now.", [("", metrics.openStreams.load(ordering: .relaxed))])
        metric("herald_events_sent_total", "counter", "Events written to streams.", [("", metrics.eventsSent.load(ordering: .relaxed))])
        metric("herald_stream_bytes_sent_total", "counter", "Bytes written to streams.", [("", metrics.bytesSent.load(ordering: .relaxed))])
        metric("herald_slow_clients_dropped_total", "counter", "Streams dropped because the client did not read.",
               [("", metrics.slowClientsDropped.load(ordering: .relaxed))])
        metric("herald_stream_unsent_bytes", "gauge", "Bytes held for streams whose client has not read them yet.",
               [("", metrics.unsentBytes.load(ordering: .relaxed))])
        metric("herald_stream_hangups_total", "counter", "Streams closed by the client.", [("", metrics.clientsHungUp.load(ordering: .relaxed))])
        var samples: [(String, Int)] = []
        for (route, byStatus) in requests.snapshot.sorted(by: { $0.key < $1.key }) {
            for (status, n) in byStatus.sorted(by: { $0.key < $1.key }) { samples.append(("{route=\"\(route)\",status=\"\(status)\"}", n)) }
        }
        metric("herald_plain_answers_abandoned_total", "counter", "Plain answers not delivered: the web server stopped reading or was gone.",
               [("", requests.abandonedAnswers.load(ordering: .relaxed))])
        metric("herald_requests_total", "counter", "Requests answered, by route and status.", samples)
        metric("herald_jobs", "gauge", "Jobs in the state directory, by state.", jobCounts().map { ("{state=\"\($0.0.rawValue)\"}", $0.1) })
        return APIResponse(status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")], body: Array(out.utf8))
    }
}
