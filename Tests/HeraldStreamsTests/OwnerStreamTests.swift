import Foundation
import HeraldCore
import HeraldPOSIX
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
        let hub = try startedHub(on: store)
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

    /// The seqs of `id` in a client's status events, in the order received.
    func seqs(of id: JobID, in text: String) -> [Int] {
        text.components(separatedBy: "event: status\n").dropFirst().compactMap { event -> Int? in
            guard event.contains("\"id\":\"\(id.text)\""), let range = event.range(of: "\"seq\":") else { return nil }
            return Int(event[range.upperBound...].prefix { $0.isNumber })
        }
    }

    @Test func aChangeReadBeforeTheSnapshotButReportedAfterItNeverTakesAStreamBack() throws {
        let store = SlowStore()
        let id = testID(1)
        try store.submit(owned(1, "alice", seq: 2))
        let hub = try startedHub(on: store)
        let dashboard = TestClient(hub: hub, target: .dashboard)
        #expect(dashboard.read(within: 5) { $0.statusEvents == 1 })

        // The change reader reads seq 3, and is descheduled before it reports it.
        store.held.withLock { _ = $0.insert(id) }
        try store.submit(owned(1, "alice", seq: 3))
        store.watcher.queued.withLock { $0.append(.job(id)) }
        #expect(store.heldRead.wait(timeout: .now() + 5) == .success)
        // Meanwhile the job moves on, and an owner stream connects: its snapshot reads seq 4.
        try store.submit(owned(1, "alice", seq: 4))
        let alice = TestClient(hub: hub, target: .owner("alice"))
        #expect(alice.read(within: 5) { $0.statusEvents == 1 })
        // Then the stale read arrives, and seq 4's own notice.
        store.heldRelease.signal()
        usleep(100_000)
        store.watcher.queued.withLock { $0.append(.job(id)) }
        // The dashboard gets seq 4 from the same reader thread after the stale read: both were handled.
        #expect(dashboard.read(within: 5) { self.seqs(of: id, in: $0.text).last == 4 })
        _ = alice.read(within: 0.3) { _ in false }

        for (name, client) in [("owner stream", alice), ("dashboard", dashboard)] {
            let got = seqs(of: id, in: client.text)
            #expect(got.last == 4, "\(name) ends at the latest state: \(got)")
            #expect(zip(got, got.dropFirst()).allSatisfy { $0 < $1 }, "\(name) never goes back nor repeats: \(got)")
        }
    }

    @Test func aStreamOpenedWithAReadTokenEndsWhenTheTokenLapses() throws {
        let store = SlowStore()
        try store.submit(owned(1, "alice"))
        let hub = try startedHub(on: store)
        let now = HeraldPOSIX.Clock.wallMilliseconds()
        let lapsing = TestClient(hub: hub, target: .owner("alice"), authorizedUntil: now + 3000)
        let forever = TestClient(hub: hub, target: .owner("alice"))
        let job = TestClient(hub: hub, target: .job(testID(1), log: false, cursor: nil), authorizedUntil: now + 3000)
        #expect(lapsing.read(within: 5) { $0.statusEvents == 1 })
        #expect(!lapsing.read(within: 1) { $0.ended }, "open while the token is valid")
        // Past it, the stream ends without an `end` event: the client reconnects with a fresh token.
        #expect(lapsing.read(within: 10) { $0.ended })
        #expect(job.read(within: 5) { $0.ended })
        #expect(!lapsing.text.contains("event: end") && !job.text.contains("event: end"))
        #expect(!forever.read(within: 0.3) { $0.ended })
        // A change after the lapse reaches the stream without a token limit only.
        try store.submit(owned(1, "alice", seq: 3))
        store.watcher.queued.withLock { $0.append(.job(testID(1))) }
        #expect(forever.read(within: 5) { $0.statusEvents == 2 })
    }
}
