import HeraldCore
import HeraldStreams
import Testing

@Suite struct StreamHubLogTests {
    /// A follower whose socket is full holds the rest of one log event in its outbox. Framing
    /// made 64 KiB of empty lines a 448 KiB event (each LF a `\ndata: `), so 20,000 blocked
    /// followers could hold gigabytes; now an event is cut to 64 KiB framed, whatever the log.
    @Test func aLogEventStaysWithinItsFramedBudgetWhateverTheLog() throws {
        let store = SlowStore()
        let id = testID(1)
        try store.submit(testJob(id, .running))
        let lines = 64 * 1024
        store.logs.withLock { $0[id] = [UInt8](repeating: UInt8(ascii: "\n"), count: lines) }
        let hub = try startedHub(on: store)
        let client = TestClient(hub: hub, target: .job(id, log: true, cursor: nil))
        let logEvents = { (text: String) in text.components(separatedBy: "\n\n").filter { $0.hasPrefix("event: log\n") } }
        // Every line arrives: the data of the log events, joined, is the log.
        let complete = client.read(within: 10) { client in
            logEvents(client.text).map { $0.components(separatedBy: "\n").filter { $0.hasPrefix("data:") }.count - 1 }
                .reduce(0, +) == lines
        }
        #expect(complete)
        let sizes = logEvents(client.text).map { $0.utf8.count }
        #expect(!sizes.isEmpty && sizes.max()! <= 64 * 1024 + 64, "log events of \(sizes) bytes")
    }
}
