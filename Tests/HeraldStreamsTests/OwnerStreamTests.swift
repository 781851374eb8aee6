import Foundation
import HeraldCore
import HeraldStore
import HeraldStreams
import Testing

/// The owner stream (SPEC §9): one owner's jobs, as the dashboard streams every job.
@Suite struct OwnerStreamTests {
    func owned(_ n: Int, _ owner: String?, _ state: JobState = .running, seq: Int = 2) -> Job {
        var job = testJob(testID(n), state, seq: seq)
        job.owner = owner
        return job
    }

    @Test func anOwnerStreamGetsItsOwnersJobsOnlySnapshotAndChanges() throws {
        let store = SlowStore()
        try store.submit(owned(1, "alice"))
        try store.submit(owned(2, "bob"))
        try store.submit(owned(3, nil))
        try store.submit(owned(4, "alice", .succeeded, seq: 5))  // ended before: not in the snapshot
        let hub = try StreamHub(store: store, urlPrefix: "/jobs", heartbeat: .seconds(60), log: { _ in })
        hub.start()
        let alice = TestClient(hub: hub, target: .owner("alice"))
        let dashboard = TestClient(hub: hub, target: .dashboard)
        #expect(alice.read(within: 5) { $0.statusEvents == 1 })
        #expect(dashboard.read(within: 5) { $0.statusEvents == 3 })
        #expect(alice.text.contains(testID(1).text) && !alice.text.contains(testID(4).text))

        // Changes: bob's job, an unowned one, then a new job of alice's and the end of her first.
        for job in [owned(2, "bob", seq: 3), owned(3, nil, seq: 3), owned(5, "alice", .queued, seq: 1), owned(1, "alice", .succeeded, seq: 3)] {
            try store.submit(job)
            store.watcher.queued.withLock { $0.append(.job(job.id)) }
        }
        #expect(alice.read(within: 5) { $0.statusEvents == 3 })
        #expect(dashboard.read(within: 5) { $0.statusEvents == 7 })
        #expect(!alice.read(within: 0.3) { $0.statusEvents > 3 })
        #expect(alice.text.contains(testID(5).text) && alice.text.contains("\"state\":\"succeeded\""))
        #expect(!alice.text.contains(testID(2).text) && !alice.text.contains(testID(3).text))
    }
}
