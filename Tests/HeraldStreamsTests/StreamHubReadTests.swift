import Foundation
import HeraldCore
import HeraldStore
import HeraldStreams
import Testing

@Suite struct StreamHubReadTests {
    /// An inotify overflow reports every kept job. With a dashboard open the hub read each of them
    /// itself, and every stream's events and heartbeats waited (100,000 files: seconds). Now the
    /// hub reads a bounded few per round and its reader thread the rest: a followed job's change
    /// written just after the overflow reaches its stream while the reader is still at work.
    @Test func anOverflowWithADashboardOpenDoesNotHoldUpAnotherStream() throws {
        let store = SlowStore()
        let count = 5000
        for n in 0..<count { try store.submit(testJob(testID(n))) }
        let followedID = testID(count)
        var followed = testJob(followedID, .running, seq: 2)
        try store.submit(followed)
        let hub = try startedHub(on: store)
        let dashboard = TestClient(hub: hub, target: .dashboard)
        #expect(dashboard.read(within: 10) { $0.statusEvents == count + 1 }, "\(dashboard.statusEvents) of \(count + 1) in the snapshot")
        let stream = TestClient(hub: hub, target: .job(followedID, log: false, cursor: nil))
        #expect(stream.read(within: 5) { $0.statusEvents == 1 })

        // Every job file, as the watcher reports them after an overflow (none changed); each read 200 µs.
        store.readMicroseconds.store(200, ordering: .relaxed)
        store.watcher.queued.withLock { $0 = (0...count).map { .job(testID($0)) } }
        #expect(eventually(within: 5) { store.reads.load(ordering: .relaxed) > 0 })
        followed.seq = 3
        followed.progress = 50
        try store.submit(followed)
        let written = Date()
        store.watcher.queued.withLock { $0.append(.job(followedID)) }
        #expect(stream.read(within: 10) { $0.statusEvents == 2 })
        let delay = stream.lastStatusAt.timeIntervalSince(written)
        // The whole overflow read on the hub would take over 1 s (5,001 reads of 200 µs).
        print("followed job's change after the overflow: \(Int(delay * 1000)) ms")
        #expect(delay < 0.3, "the followed job's change came \(Int(delay * 1000)) ms late")
        #expect(stream.text.contains("\"progress\":50"))
    }

    /// On PostgreSQL a read is a round trip, maybe to another host. The hub read each round's changed
    /// jobs itself, so every stream of the node waited for each of those round trips. Now the reader
    /// thread reads them: while a read waits for the database, another stream's heartbeats still go out.
    @Test func aReadWaitingForTheDatabaseHoldsNoOtherStream() throws {
        let waiting = testID(1)
        var job = testJob(waiting, .running, seq: 2)
        let (store, hub, otherStream) = try roundTripHubWithAStreamOpen()
        try store.submit(job)
        let waitingStream = TestClient(hub: hub, target: .job(waiting, log: false, cursor: nil))
        #expect(waitingStream.read(within: 5) { $0.statusEvents == 1 })

        store.held.withLock { _ = $0.insert(waiting) }
        job.seq = 3
        job.progress = 50
        try store.submit(job)
        store.watcher.queued.withLock { $0.append(.job(waiting)) }
        expectHeartbeats(to: otherStream, whileAReadIsHeldIn: store)
        #expect(waitingStream.read(within: 5) { $0.statusEvents == 2 })
        #expect(waitingStream.text.contains("\"progress\":50"))
    }

    /// Likewise a new stream: the hub read its job itself before its first event, and 1,000 clients
    /// connecting at once meant 1,000 round trips in a row with every other stream of the node waiting.
    @Test func aNewStreamsFirstReadHoldsNoOtherStream() throws {
        let newID = testID(1)
        let (store, hub, otherStream) = try roundTripHubWithAStreamOpen()
        try store.submit(testJob(newID, .running, seq: 4))
        store.held.withLock { _ = $0.insert(newID) }
        let newStream = TestClient(hub: hub, target: .job(newID, log: false, cursor: nil))
        expectHeartbeats(to: otherStream, whileAReadIsHeldIn: store)
        #expect(newStream.read(within: 5) { $0.statusEvents == 1 })
        #expect(newStream.text.contains("\"seq\":4"))
    }

    /// Likewise a log follower's next chunk: the hub read it itself, a round trip each round the log grew.
    @Test func aLogReadWaitingForTheDatabaseHoldsNoOtherStream() throws {
        let (store, hub, otherStream) = try roundTripHubWithAStreamOpen()
        let logged = testID(1)
        try store.submit(testJob(logged, .running, seq: 2))
        store.logs.withLock { $0[logged] = Array("line one\n".utf8) }
        store.logHeld.withLock { $0 = true }
        let follower = TestClient(hub: hub, target: .job(logged, log: true, cursor: nil))
        expectHeartbeats(to: otherStream, whileAReadIsHeldIn: store)
        #expect(follower.read(within: 5) { $0.text.contains("data: line one") && $0.statusEvents == 1 })
    }

    /// A log chunk whose read fails (the database away) is asked for again a second later, notice or not: an
    /// ended job's last chunk waited for a log notice that never came, and its stream never ended. On a store
    /// read on the hub thread (no descriptor left), the stream ended at once, without the rest of the log.
    @Test(arguments: [false, true])
    func aFailedLogReadIsAskedAgainAndTheStreamStillEnds(readsAreRoundTrips: Bool) throws {
        let store = SlowStore(readsAreRoundTrips: readsAreRoundTrips)
        let id = testID(1)
        try store.submit(testJob(id, .succeeded, seq: 5))
        store.logs.withLock { $0[id] = Array("last words\n".utf8) }
        store.logFailures.store(1, ordering: .relaxed)
        let hub = try startedHub(on: store)
        let follower = TestClient(hub: hub, target: .job(id, log: true, cursor: nil))
        #expect(follower.read(within: 5) { $0.ended })
        #expect(follower.text.contains("data: last words"))
        #expect(follower.text.contains("event: end"))
        #expect(store.logFailures.load(ordering: .relaxed) == 0, "no read failed")
    }

    /// A new stream's first read of its job that fails (the database away, or no descriptor left) is made again
    /// a second later: it was left to the job's next change, and a job that had ended changes no more, so its
    /// stream got heartbeats for ever and never its status nor its end. On either kind of store.
    @Test(arguments: [false, true])
    func aFailedFirstReadIsMadeAgainAndTheStreamStillEnds(readsAreRoundTrips: Bool) throws {
        let store = SlowStore(readsAreRoundTrips: readsAreRoundTrips)
        let id = testID(1)
        try store.submit(testJob(id, .succeeded, seq: 5))
        store.jobFailures.store(1, ordering: .relaxed)
        let hub = try startedHub(on: store)
        let stream = TestClient(hub: hub, target: .job(id, log: false, cursor: nil))
        #expect(stream.read(within: 5) { $0.ended })
        #expect(stream.statusEvents == 1)
        #expect(stream.text.contains("event: end"))
        #expect(store.jobFailures.load(ordering: .relaxed) == 0, "no read failed")
    }

    /// Likewise the read of a changed job: the job's end, read while the database was away, was lost for good.
    @Test(arguments: [false, true])
    func aFailedReadOfAChangedJobIsMadeAgainAndTheStreamStillEnds(readsAreRoundTrips: Bool) throws {
        let store = SlowStore(readsAreRoundTrips: readsAreRoundTrips)
        let id = testID(1)
        var job = testJob(id, .running, seq: 2)
        try store.submit(job)
        let hub = try startedHub(on: store)
        let stream = TestClient(hub: hub, target: .job(id, log: false, cursor: nil))
        #expect(stream.read(within: 5) { $0.statusEvents == 1 })
        job.state = .succeeded
        job.seq = 3
        try store.submit(job)
        store.jobFailures.store(1, ordering: .relaxed)
        store.watcher.queued.withLock { $0.append(.job(id)) }
        #expect(stream.read(within: 5) { $0.ended })
        #expect(stream.text.contains("\"state\":\"succeeded\""))
        #expect(store.jobFailures.load(ordering: .relaxed) == 0, "no read failed")
    }

    /// A job gone from the store by the time its new stream's read comes back ends that stream, as before.
    @Test func aNewStreamOfAJobGoneEndsWhenItsReadComesBack() throws {
        let store = SlowStore(readsAreRoundTrips: true)
        let hub = try startedHub(on: store)
        let stream = TestClient(hub: hub, target: .job(testID(9), log: false, cursor: nil))
        #expect(stream.read(within: 5) { $0.ended })
        #expect(stream.text.contains(": gone"))
    }

    /// A hub on a store whose reads are round trips, heartbeats every 100 ms, and a stream open on another job.
    private func roundTripHubWithAStreamOpen() throws -> (SlowStore, StreamHub, TestClient) {
        let store = SlowStore(readsAreRoundTrips: true)
        try store.submit(testJob(testID(2), .running, seq: 2))
        let hub = try startedHub(on: store, heartbeat: HeraldDuration(milliseconds: 100))
        let stream = TestClient(hub: hub, target: .job(testID(2), log: false, cursor: nil))
        #expect(stream.read(within: 5) { $0.statusEvents == 1 })
        return (store, hub, stream)
    }

    /// Waits for the held read to start, expects `client` to get heartbeats meanwhile, then lets the read answer.
    private func expectHeartbeats(to client: TestClient, whileAReadIsHeldIn store: SlowStore) {
        #expect(store.heldRead.wait(timeout: .now() + 5) == .success, "the held job was not read")
        func pings(_ client: TestClient) -> Int { client.text.components(separatedBy: ServerSentEvents.ping).count - 1 }
        let before = pings(client)
        #expect(client.read(within: 3) { pings($0) >= before + 3 }, "no heartbeat while a read waited")
        store.heldRelease.signal()
    }
}
