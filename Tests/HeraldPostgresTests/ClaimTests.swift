import Foundation
import HeraldCore
import HeraldPOSIX
import HeraldPostgres
@testable import HeraldPostgresStore
import HeraldPostgresTesting
import HeraldStore
import Testing

/// Claims: oldest first, SKIP LOCKED, per-kind concurrency across runners, fencing, recovery.
@Suite struct ClaimTests {
    @Test func claimsTakeTheOldestQueuedJobAndSkipRowsAnotherSessionLocked() throws {
        let fixture = try PostgresFixture()
        let store = try fixture.store()
        let jobs = try (0..<3).map { _ in try fixture.submit(store) }
        let other = try fixture.connect()
        try other.execute("BEGIN")
        try other.execute("SELECT id FROM herald.jobs WHERE id = $1 FOR UPDATE", [.text(jobs[0].id.text)])
        let first = try #require(try store.claimNext(kinds: testKinds, now: fixture.now()))
        #expect(first.job.id == jobs[1].id)  // the oldest is locked: skipped, not waited for
        #expect(first.job.state == .running)
        try other.execute("ROLLBACK")
        #expect(try store.claimNext(kinds: testKinds, now: fixture.now())?.job.id == jobs[0].id)
        #expect(try store.claimNext(kinds: testKinds, now: fixture.now())?.job.id == jobs[2].id)
        #expect(try store.claimNext(kinds: testKinds, now: fixture.now()) == nil)
        #expect(try store.job(jobs[1].id)?.state == .running)
    }

    @Test func twoRunnersClaimingAtOnceNeverTakeTheSameJobOrMoreThanTheKindsConcurrency() throws {
        let fixture = try PostgresFixture()
        let stores = try (0..<2).map { _ in try fixture.store() }
        let submitted = try (0..<12).map { k in try fixture.submit(stores[0], k % 2 == 0 ? "report" : "limited") }
        let claimed = ClaimLog()
        DispatchQueue.concurrentPerform(iterations: 2) { k in
            while let claim = try? stores[k].claimNext(kinds: testKinds, now: Timestamp(milliseconds: 1_764_000_100_000)) {
                claimed.add(claim)
            }
        }
        let ids = claimed.claims.map(\.job.id)
        #expect(Set(ids).count == ids.count)
        #expect(claimed.claims.filter { $0.job.kind == "limited" }.count == 2)
        #expect(claimed.claims.filter { $0.job.kind == "report" }.count == 6)
        // A finished slot is free again, for either runner.
        let limited = try #require(claimed.claims.first { $0.job.kind == "limited" })
        try limited.finish(try #require(limited.job.applying(.exited(status: 0), at: fixture.now(), retries: 0)))
        let next = try #require(try stores[1].claimNext(kinds: testKinds, now: fixture.now()))
        #expect(next.job.kind == "limited")
        #expect(submitted.contains { $0.id == next.job.id })
        #expect(try stores[0].claimNext(kinds: testKinds, now: fixture.now()) == nil)
    }

    @Test func aKindThisRunnerDoesNotKnowIsLeftQueued() throws {
        let fixture = try PostgresFixture()
        let store = try fixture.store()
        let other = try fixture.submit(store, "elsewhere")
        #expect(try store.claimNext(kinds: testKinds, now: fixture.now()) == nil)
        #expect(try store.job(other.id)?.state == .queued)
    }

    @Test func writesUnderAClaimThatWasTakenOverAreRefusedAndChangeNothing() throws {
        let fixture = try PostgresFixture()
        let store = try fixture.store()
        let job = try fixture.submit(store)
        let claim = try #require(try store.claimNext(kinds: testKinds, now: fixture.now()))
        var progress = try #require(claim.job.applying(.report(ProgressReport(progress: 10)), at: fixture.now(), retries: 1))
        try claim.writeProgress(progress)
        try claim.appendLog(Array("before\n".utf8))
        // Another runner's takeover gives the row a new claim token.
        try fixture.connect().execute("UPDATE herald.jobs SET claim = nextval('herald.claims') WHERE id = $1", [.text(job.id.text)])
        let before = try store.job(job.id)
        progress = try #require(progress.applying(.report(ProgressReport(progress: 50)), at: fixture.now(), retries: 1))
        #expect(throws: StoreError.claimLost(job.id)) { try claim.writeProgress(progress) }
        #expect(throws: StoreError.claimLost(job.id)) { try claim.appendLog(Array("after\n".utf8)) }
        #expect(throws: StoreError.claimLost(job.id)) { try claim.isCancelRequested() }
        #expect(throws: StoreError.claimLost(job.id)) { try claim.logSize() }
        #expect(throws: StoreError.claimLost(job.id)) { try claim.finish(try #require(progress.applying(.exited(status: 0), at: fixture.now(), retries: 1))) }
        #expect(try store.job(job.id) == before)
        #expect(try store.log(job.id, from: 0, maxBytes: 100).bytes == Array("before\n".utf8))
    }

    @Test func aDeadRunnersJobIsRetriedByAnotherAndTheDeadOnesWritesAreRefused() throws {
        let fixture = try PostgresFixture()
        let dead = try fixture.store()
        let job = try fixture.submit(dead)
        let lost = try #require(try dead.claimNext(kinds: testKinds, now: fixture.now()))
        let other = try fixture.store()
        #expect(try other.recoverLostJobs(kinds: testKinds, now: fixture.now()).isEmpty)  // its runner is alive
        try endSession(of: dead, in: fixture)
        #expect(try other.recoverLostJobs(kinds: testKinds, now: fixture.now()).isEmpty)  // free, but not yet for the grace
        try fixture.connect().execute("UPDATE herald.runners SET seen_free_at = now() - interval '1 minute'")
        let recovered = try other.recoverLostJobs(kinds: testKinds, now: fixture.now())
        #expect(recovered.map(\.id) == [job.id])
        #expect(recovered.first?.state == .queued)
        #expect(recovered.first?.attempt == 2)
        #expect(recovered.first?.error?.code == .runnerLost)
        let successor = try #require(try other.claimNext(kinds: testKinds, now: fixture.now()))
        #expect(successor.job.id == job.id)
        let late = try #require(lost.job.applying(.exited(status: 0), at: fixture.now(), retries: 1))
        #expect(throws: StoreError.claimLost(job.id)) { try lost.finish(late) }
        try successor.writeProgress(try #require(successor.job.applying(.report(ProgressReport(progress: 5)), at: fixture.now(), retries: 1)))
        #expect(try other.job(job.id)?.progress == 5)
        #expect(try other.job(job.id)?.attempt == 2)
    }

    @Test func aRunnerWithoutRetriesLeftFailsTheLostJob() throws {
        let fixture = try PostgresFixture()
        let dead = try fixture.store()
        let job = try fixture.submit(dead, "limited")
        _ = try #require(try dead.claimNext(kinds: testKinds, now: fixture.now()))
        try endSession(of: dead, in: fixture)
        try fixture.connect().execute("UPDATE herald.runners SET seen_free_at = now() - interval '1 minute'")
        let other = try fixture.store()
        let recovered = try other.recoverLostJobs(kinds: testKinds, now: fixture.now())
        #expect(recovered.map(\.state) == [.failed])
        #expect(try other.job(job.id)?.error?.code == .runnerLost)
        #expect(try fixture.connect().execute("SELECT claim FROM herald.jobs").string(0, 0) == nil)
    }

    @Test func anAbandonedClaimIsRecoveredByItsOwnRunner() throws {
        let fixture = try PostgresFixture()
        let store = try fixture.store()
        let job = try fixture.submit(store)
        let claim = try #require(try store.claimNext(kinds: testKinds, now: fixture.now()))
        claim.abandon()
        let recovered = try store.recoverLostJobs(kinds: testKinds, now: fixture.now())
        #expect(recovered.map(\.id) == [job.id])
        #expect(recovered.first?.state == .queued)
        #expect(try store.recoverLostJobs(kinds: testKinds, now: fixture.now()).isEmpty)
    }

    @Test func logsAreByteExactAcrossChunks() throws {
        let fixture = try PostgresFixture()
        let store = try fixture.store()
        let job = try fixture.submit(store)
        let claim = try #require(try store.claimNext(kinds: testKinds, now: fixture.now()))
        #expect(try store.log(job.id, from: 0, maxBytes: 10) == LogRead(bytes: [], atEnd: true))
        let chunks: [[UInt8]] = [Array("héllo\r\n".utf8), [0, 255, 10], Array(repeating: 65, count: 1000), Array("end".utf8)]
        for chunk in chunks { try claim.appendLog(chunk) }
        let all = chunks.flatMap { $0 }
        #expect(try claim.logSize() == all.count)
        for (offset, max) in [(0, 5000), (0, 3), (7, 3), (5, 4), (9, 1), (500, 600), (all.count - 2, 10), (all.count, 10), (all.count + 5, 10),
                              (118_342_099_867, 10), (Int.max, Int.max), (0, Int.max)] {
            let read = try store.log(job.id, from: offset, maxBytes: max)
            let expected = offset < all.count ? Array(all[offset..<min(all.count, offset + max)]) : []
            #expect(read.bytes == expected, "offset \(offset) max \(max)")
            #expect(read.atEnd == (offset + expected.count >= all.count))
        }
        #expect(try store.log(fixture.newJob().id, from: 0, maxBytes: 10) == LogRead(bytes: [], atEnd: true))
    }

    @Test func everyWriteNotifiesIdsOnlyAndStatusAndLogChangesGoWhereRunnersDoNotListen() throws {
        let fixture = try PostgresFixture()
        let listener = try fixture.connect()
        try listener.execute("LISTEN herald")
        try listener.execute("LISTEN herald_jobs")
        let store = try fixture.store()
        let job = try fixture.submit(store)
        try store.requestCancel(job.id)
        let claim = try #require(try store.claimNext(kinds: testKinds, now: fixture.now()))
        try claim.appendLog([1, 2, 3])
        try claim.finish(try #require(claim.job.applying(.cancel, at: fixture.now(), retries: 0)))
        var received: [String] = []
        let deadline = Date().addingTimeInterval(5)
        while received.count < 5, Date() < deadline {
            try listener.execute("SELECT 1")  // notifications arrive with any result
            received += listener.notifications().map { "\($0.channel): \($0.payload)" }
        }
        #expect(received == ["herald: s \(job.id)", "herald: c \(job.id)", "herald_jobs: j \(job.id)", "herald_jobs: l \(job.id)",
                             "herald_jobs: j \(job.id)"])
    }

    @Test func payloadsStayUnderTheCapAndParseBack() {
        let ids = (0..<1000).map { JobID(milliseconds: UInt64($0), random: Array(repeating: UInt8($0 % 256), count: 10)) }
        let payloads = ChangeNotice.job.payloads(ids)
        #expect(payloads.count > 1)
        #expect(payloads.allSatisfy { $0.utf8.count <= ChangeNotice.maxPayloadBytes })
        #expect(payloads.compactMap(ChangeNotice.parse).flatMap { $0.1 } == ids)
        #expect(ChangeNotice.parse("x something") == nil)
        #expect(ChangeNotice.parse("j not-an-id") == nil)
    }

    @Test func gcRemovesInBatchesOldestFirstWithTheirLogs() throws {
        let fixture = try PostgresFixture()
        let store = try fixture.store()
        var ended: [Job] = []
        for _ in 0..<5 {
            _ = try fixture.submit(store)
            let claim = try #require(try store.claimNext(kinds: testKinds, now: fixture.now()))
            try claim.appendLog([1])
            let last = try #require(claim.job.applying(.exited(status: 0), at: fixture.now(), retries: 0))
            try claim.finish(last)
            ended.append(last)
        }
        let young = try fixture.submit(store)
        let cutoff = fixture.now()
        #expect(try store.removeFinishedJobs(before: cutoff, limit: 2, dryRun: true).map(\.id) == ended.map(\.id))
        #expect(try store.removeFinishedJobs(before: cutoff, limit: 2, dryRun: false).map(\.id) == ended.prefix(2).map(\.id))
        #expect(try store.removeFinishedJobs(before: cutoff, limit: 2, dryRun: false).map(\.id) == ended[2..<4].map(\.id))
        #expect(try store.removeFinishedJobs(before: cutoff, limit: 2, dryRun: false).map(\.id) == [ended[4].id])
        #expect(try store.jobs(JobFilter()).map(\.id) == [young.id])
        #expect(try fixture.connect().execute("SELECT count(*) FROM herald.job_logs").int(0, 0) == 0)
    }

    /// Ends `store`'s liveness session as a dead process would (its lock freed), and waits until it is.
    private func endSession(of store: PostgresStore, in fixture: PostgresFixture) throws {
        store.liveness.withLock { $0?.stop() }
        let check = try fixture.connect()
        for _ in 0..<300 {
            let held = try check.execute("""
                SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::bigint::oid
                    AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                """, [.int(Schema.LockSpace.runner.rawValue)])
            if held.int(0, 0) == 0 { return }
            Thread.sleep(forTimeInterval: 0.01)
        }
        Issue.record("the liveness lock was never freed")
    }
}

/// Claims gathered from several threads.
final class ClaimLog: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var claims: [any JobClaim] = []
    func add(_ claim: any JobClaim) { lock.withLock { claims.append(claim) } }
}

/// A runner whose liveness session is lost and cannot be taken back gives its claims up at once.
@Suite struct LivenessTests {
    @Test func aSessionThatCannotBeRetakenLosesItsClaimsAndWakesTheWatchers() throws {
        let fixture = try PostgresFixture()
        let store = try fixture.store()
        let watcher = try store.watch()
        let job = try fixture.submit(store)
        let claim = try #require(try store.claimNext(kinds: testKinds, now: fixture.now()))
        #expect(try claim.isCancelRequested() == false)
        let admin = try fixture.connect()
        let holder = try admin.execute("""
            SELECT l.objid, l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.classid = $1::bigint::oid AND l.granted
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
            """, [.int(Schema.LockSpace.runner.rawValue)])
        let runner = try #require(holder.int(0, 0)), pid = try #require(holder.int(0, 1))
        // A recovery holds the runner's lock the moment its session ends: the runner cannot take it back.
        let recovery = try fixture.connect()
        try admin.execute("SELECT pg_terminate_backend($1)", [.int(pid)])
        try recovery.execute("SELECT pg_advisory_lock($1, $2)", [.int(Schema.LockSpace.runner.rawValue), .int(runner)])
        var changes = Set<StoreChange>()
        let deadline = HeraldPOSIX.Clock.monotonicMilliseconds() + 10_000
        while !changes.contains(.everything), HeraldPOSIX.Clock.monotonicMilliseconds() < deadline {
            changes.formUnion(try watcher.changes())
            HeraldPOSIX.Clock.sleep(milliseconds: 20)
        }
        #expect(changes.contains(.everything))
        #expect(throws: StoreError.claimLost(job.id)) { try claim.isCancelRequested() }
        #expect(throws: StoreError.claimLost(job.id)) { try claim.writeProgress(claim.job) }
        // The runner goes on under a new session: it claims again, and recovery may take the old one's jobs.
        try recovery.execute("SELECT pg_advisory_unlock_all()")
        let next = try fixture.submit(store)
        #expect(try store.claimNext(kinds: testKinds, now: fixture.now())?.job.id == next.id)
    }
}
