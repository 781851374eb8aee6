import HeraldCore
import HeraldStore
import HeraldStreams
import Testing

@Suite struct StreamHubEverythingTests {
    /// `.everything` says notices may have been lost (PostgreSQL's LISTEN connection came back): a
    /// followed job that changed and a log that grew with no notice of their own reach the stream.
    @Test func everythingBringsFollowersUpToTheStoreWithoutNoticesOfTheirOwn() throws {
        let store = SlowStore()
        let id = testID(1)
        var job = testJob(id, .running, seq: 2)
        try store.submit(job)
        let hub = try startedHub(on: store)
        let client = TestClient(hub: hub, target: .job(id, log: true, cursor: nil))
        #expect(client.read(within: 5) { $0.statusEvents == 1 })
        // Changed while the notices were lost.
        job.seq = 3
        job.progress = 70
        try store.submit(job)
        store.logs.withLock { $0[id] = Array("missed line\n".utf8) }
        store.watcher.queued.withLock { $0 = [.everything] }
        #expect(client.read(within: 5) { $0.statusEvents == 2 && $0.text.contains("missed line") })
        #expect(client.text.contains("\"progress\":70"))
    }
}
