import Foundation
import HeraldCore
import HeraldPOSIX
import Testing
@testable import HeraldStore

/// The store's side of SPEC §9: owners in listings and idempotent submit. Written against `RunnerStore`
/// so that every store (the directory today, PostgreSQL later) runs the same cases.
@Suite struct IdempotencyStoreTests {
    static let key = IdempotencyRecord(keyHash: String(repeating: "ab", count: 32), bodyHash: String(repeating: "0", count: 64))

    func fresh(_ fixture: StoreFixture, owner: String? = nil) -> Job {
        let time = fixture.now()
        return Job(id: JobID(milliseconds: UInt64(time.milliseconds), random: RandomSource.bytes(10)), kind: "report", params: [:], owner: owner, now: time)
    }

    @Test func aRepeatWithTheSameBodyGetsTheSameJobAndAnotherBodyIsRefused() throws {
        let fixture = try StoreFixture()
        let store: any RunnerStore = fixture.store
        let first = fresh(fixture)
        #expect(try store.submit(first, idempotency: Self.key) == .created(first))
        #expect(try store.submit(fresh(fixture), idempotency: Self.key) == .repeated(first))
        _ = try store.ingest()
        #expect(try store.submit(fresh(fixture), idempotency: Self.key) == .repeated(first))
        let other = IdempotencyRecord(keyHash: Self.key.keyHash, bodyHash: String(repeating: "1", count: 64))
        #expect(try store.submit(fresh(fixture), idempotency: other) == .keyReused)
        #expect(try store.jobs(JobFilter()).map(\.id) == [first.id])
        // The record holds hashes and the job, never a key or a token.
        let record = try #require(try FileSystem.read("\(fixture.root)/idempotency/\(Self.key.keyHash)"))
        #expect(String(decoding: record, as: UTF8.self).contains(Self.key.bodyHash))
    }

    @Test func concurrentSubmitsWithOneKeyCreateExactlyOneJob() throws {
        let fixture = try StoreFixture()
        let store = fixture.store
        let jobs = (0..<32).map { _ in fresh(fixture) }
        try expectOneJobFromConcurrentSubmits(jobs.map { ($0, store) }, key: Self.key, listing: store)
    }

    @Test func gcExpiresRecordsOlderThanTheCutoffOnly() throws {
        let fixture = try StoreFixture()
        let store: any RunnerStore = fixture.store
        let first = fresh(fixture)
        _ = try store.submit(first, idempotency: Self.key)
        let past = Timestamp(milliseconds: Clock.wallMilliseconds() - 60_000)
        #expect(try store.expireIdempotencyRecords(before: past, dryRun: false) == 0)
        let future = Timestamp(milliseconds: Clock.wallMilliseconds() + 60_000)
        #expect(try store.expireIdempotencyRecords(before: future, dryRun: true) == 1)
        #expect(try store.submit(fresh(fixture), idempotency: Self.key) == .repeated(first))
        #expect(try store.expireIdempotencyRecords(before: future, dryRun: false) == 1)
        // Expired: the key is free again.
        let again = fresh(fixture)
        #expect(try store.submit(again, idempotency: Self.key) == .created(again))
    }

    @Test func listingsFilterByOwner() throws {
        let fixture = try StoreFixture()
        let store: any RunnerStore = fixture.store
        let mine = fresh(fixture, owner: "user-42")
        try store.submit(mine)
        try store.submit(fresh(fixture, owner: "user-7"))
        try store.submit(fresh(fixture))
        #expect(try store.jobs(JobFilter(owner: "user-42")).map(\.id) == [mine.id])
        _ = try store.ingest()
        #expect(try store.jobs(JobFilter(owner: "user-42")).map { $0.owner } == ["user-42"])
    }

    /// Makes the key's record look written `seconds` ago, and removes its job (gc, or a first request that died before submitting).
    func orphanRecord(_ fixture: StoreFixture, _ job: Job, age seconds: Double) throws {
        for dir in ["new", "jobs"] { _ = try? FileSystem.unlink("\(fixture.root)/\(dir)/\(job.id.text).json") }
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-seconds)],
                                              ofItemAtPath: "\(fixture.root)/idempotency/\(Self.key.keyHash)")
    }

    @Test func aKeyWhoseJobIsGoneForGoodIsFreeAgain() throws {
        let fixture = try StoreFixture()
        let store: any RunnerStore = fixture.store
        let first = fresh(fixture)
        #expect(try store.submit(first, idempotency: Self.key) == .created(first))
        try orphanRecord(fixture, first, age: 120)
        // Not a 503 for the rest of the key's 24 h: the repeat submits, once.
        let second = fresh(fixture)
        let started = Clock.monotonicMilliseconds()
        #expect(try store.submit(second, idempotency: Self.key) == .created(second))
        #expect(Clock.monotonicMilliseconds() - started < 1000, "no wait for a job that will never come")
        #expect(try store.submit(fresh(fixture), idempotency: Self.key) == .repeated(second))
        #expect(try store.jobs(JobFilter()).map(\.id) == [second.id])
    }

    @Test func concurrentRepeatsOfAKeyWhoseJobIsGoneCreateExactlyOneJob() throws {
        let fixture = try StoreFixture()
        let store = fixture.store
        let first = fresh(fixture)
        _ = try store.submit(first, idempotency: Self.key)
        try orphanRecord(fixture, first, age: 120)
        let jobs = (0..<16).map { _ in fresh(fixture) }
        try expectOneJobFromConcurrentSubmits(jobs.map { ($0, store) }, key: Self.key, listing: store)
    }

    @Test func aKeyOlderThanADayIsFreeAgainBeforeGcRemovesIt() throws {
        let fixture = try StoreFixture()
        let store: any RunnerStore = fixture.store
        let first = fresh(fixture)
        _ = try store.submit(first, idempotency: Self.key)
        _ = try store.ingest()
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-25 * 3600)],
                                              ofItemAtPath: "\(fixture.root)/idempotency/\(Self.key.keyHash)")
        // Past its 24 h the key answers no more repeats, even with another body, though gc has not run yet.
        let other = IdempotencyRecord(keyHash: Self.key.keyHash, bodyHash: String(repeating: "1", count: 64))
        let second = fresh(fixture)
        #expect(try store.submit(second, idempotency: other) == .created(second))
        #expect(try store.submit(fresh(fixture), idempotency: other) == .repeated(second))
        #expect(Set(try store.jobs(JobFilter()).map(\.id)) == [first.id, second.id])
    }
}
