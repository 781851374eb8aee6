import Foundation
import HeraldCore
import Testing
import HeraldPOSIX
import HeraldStore

/// The store contract, web side: what every store does for herald-fcgi and the CLI, run against each store.
@Suite struct StoreContractTests {
    static let key = IdempotencyRecord(keyHash: String(repeating: "cd", count: 32), bodyHash: String(repeating: "0", count: 64))

    @Test(arguments: ContractStoreKind.all)
    func submittedJobsAreReadListedFilteredAndCounted(kind: ContractStoreKind) throws {
        let s = try kind.open()
        let store = s.store
        let first = s.fresh(owner: "alice")
        try store.submit(first)
        #expect(try store.job(first.id) == first)  // visible at once, before any runner took it in
        _ = try store.ingest()
        let second = try s.submit("export", owner: "bob")
        let third = try s.submit(owner: "alice")
        let claim = try s.claim()  // the oldest: first
        #expect(claim.job.id == first.id)
        try claim.finish(try s.ended(claim))
        #expect(try store.job(JobID(milliseconds: 1, random: Array(repeating: 0, count: 10))) == nil)
        #expect(try store.jobs(JobFilter()).map(\.id) == [third.id, second.id, first.id])  // newest first
        #expect(try store.jobs(JobFilter(limit: 2)).map(\.id) == [third.id, second.id])
        #expect(try store.jobs(JobFilter(before: third.id)).map(\.id) == [second.id, first.id])
        #expect(try store.jobs(JobFilter(state: .queued)).map(\.id) == [third.id, second.id])
        #expect(try store.jobs(JobFilter(kind: "export")).map(\.id) == [second.id])
        #expect(try store.jobs(JobFilter(owner: "alice")).map(\.id) == [third.id, first.id])
        #expect(try store.jobs(JobFilter(state: .succeeded, owner: "alice")).map(\.id) == [first.id])
        #expect(try store.jobCounts() == [.queued: 2, .succeeded: 1])
        // Read together (the hub's batch), in the order asked, with their latest state; an unknown id reads as none.
        let unknown = JobID(milliseconds: 1, random: Array(repeating: 0, count: 10))
        let together = store.jobs(ids: [second.id, unknown, first.id])
        #expect(together.map(\.id) == [second.id, unknown, first.id])
        #expect(together.map { $0.job?.state } == [.queued, nil, .succeeded])
        #expect(try together[2].job == store.job(first.id))
        #expect(store.jobs(ids: []).isEmpty)
    }

    @Test(arguments: ContractStoreKind.all)
    func anIdempotentRepeatGetsTheFirstJobAndAnotherBodyIsRefused(kind: ContractStoreKind) throws {
        let s = try kind.open()
        let store = s.store
        let first = s.fresh()
        #expect(try store.submit(first, idempotency: Self.key) == .created(first))
        #expect(try store.submit(s.fresh(), idempotency: Self.key) == .repeated(first))
        _ = try store.ingest()
        let claim = try s.claim()
        // A repeat gets the job as it is now.
        #expect(try store.submit(s.fresh(), idempotency: Self.key) == .repeated(claim.job))
        let other = IdempotencyRecord(keyHash: Self.key.keyHash, bodyHash: String(repeating: "1", count: 64))
        #expect(try store.submit(s.fresh(), idempotency: other) == .keyReused)
        #expect(try store.jobs(JobFilter()).map(\.id) == [first.id])
        try claim.finish(try s.ended(claim))
    }

    @Test(arguments: ContractStoreKind.all)
    func concurrentSubmitsWithOneKeyCreateExactlyOneJob(kind: ContractStoreKind) throws {
        let s = try kind.open()
        let jobs = (0..<16).map { _ in s.fresh() }
        // Each thread on its own handle, as separate requests (processes, hosts) are.
        let stores = try jobs.map { _ in try s.another() }
        try expectOneJobFromConcurrentSubmits(zip(jobs, stores).map { ($0, $1) }, key: Self.key, listing: s.store)
    }

    @Test(arguments: ContractStoreKind.all)
    func idempotencyRecordsExpireBeforeTheCutoffOnly(kind: ContractStoreKind) throws {
        let s = try kind.open()
        let store = s.store
        _ = try store.submit(s.fresh(), idempotency: Self.key)
        let other = IdempotencyRecord(keyHash: String(repeating: "ef", count: 32), bodyHash: Self.key.bodyHash)
        _ = try store.submit(s.fresh(), idempotency: other)
        let wall = Clock.wallMilliseconds()
        #expect(try store.expireIdempotencyRecords(before: Timestamp(milliseconds: wall - 3_600_000), dryRun: false) == 0)
        let later = Timestamp(milliseconds: wall + 1000)
        #expect(try store.expireIdempotencyRecords(before: later, dryRun: true) == 2)
        #expect(try store.expireIdempotencyRecords(before: later, dryRun: false) == 2)
        #expect(try store.expireIdempotencyRecords(before: later, dryRun: false) == 0)
        // The key is free again: a new body makes a new job.
        let again = s.fresh()
        let changed = IdempotencyRecord(keyHash: Self.key.keyHash, bodyHash: String(repeating: "2", count: 64))
        #expect(try store.submit(again, idempotency: changed) == .created(again))
    }

    @Test(arguments: ContractStoreKind.all)
    func aQueuedJobAskedToCancelIsCanceledByTheNextPass(kind: ContractStoreKind) throws {
        let s = try kind.open()
        let store = s.store
        let job = try s.submit()
        let waiting = try s.submit()
        try store.requestCancel(job.id)
        try store.requestCancel(job.id)  // idempotent
        let canceled = try store.cancelRequestedQueuedJobs(now: s.now())
        #expect(canceled.map(\.id) == [job.id])
        let now = try s.read(job.id)
        #expect(now.state == .canceled && now.error?.code == .canceled && now.finishedAt != nil)
        #expect(try store.cancelRequestedQueuedJobs(now: s.now()).isEmpty)  // the request is gone
        #expect(try s.claim().job.id == waiting.id)  // the canceled job is no longer claimable
        #expect(try store.claimNext(kinds: ContractStore.kinds(), now: s.now()) == nil)
    }
}
