import Foundation
import HeraldCore
import Testing
import HeraldStore

/// The store contract, runner side: claims and what is written under them, recovery, logs, the
/// watcher and gc, run against each store.
@Suite struct StoreContractRunnerTests {
    @Test(arguments: ContractStoreKind.all)
    func claimsTakeTheOldestQueuedJobFirst(kind: ContractStoreKind) throws {
        let s = try kind.open()
        let jobs = try (0..<4).map { _ in try s.submit() }
        var claims: [any JobClaim] = []
        while let claim = try s.store.claimNext(kinds: ContractStore.kinds(), now: s.now()) { claims.append(claim) }
        #expect(claims.map(\.job.id) == jobs.map(\.id))
        #expect(claims.allSatisfy { $0.job.state == .running && $0.job.attempt == 1 })
        #expect(try s.read(jobs[0].id).state == .running)  // durable at the claim, visible to readers
        for claim in claims { try claim.finish(try s.ended(claim)) }
    }

    @Test(arguments: ContractStoreKind.all)
    func aKindsConcurrencyHoldsAcrossRunnersAndAFullKindIsSkipped(kind: ContractStoreKind) throws {
        let s = try kind.open()
        let kinds = ContractStore.kinds(concurrency: 1)
        let first = try s.submit()
        let second = try s.submit()
        let other = try s.submit("export")
        let elsewhere = try s.another()
        let claim = try s.claim(kinds)
        #expect(claim.job.id == first.id)
        // Another runner: the kind is full, so it skips to the next kind's job.
        let skipped = try s.claim(kinds, from: elsewhere)
        #expect(skipped.job.id == other.id)
        #expect(try elsewhere.claimNext(kinds: kinds, now: s.now()) == nil)
        try claim.finish(try s.ended(claim))
        let next = try s.claim(kinds, from: elsewhere)
        #expect(next.job.id == second.id)
        for claim in [skipped, next] { try claim.finish(try s.ended(claim)) }
    }

    @Test(arguments: ContractStoreKind.all)
    func progressWrittenUnderAClaimIsVisibleWithItsSeq(kind: ContractStoreKind) throws {
        let s = try kind.open()
        let job = try s.submit()
        let claim = try s.claim()
        var seen = claim.job.seq
        for percent in [10.0, 50.0, 90.0] {
            let next = try #require(try s.read(job.id).applying(.report(ProgressReport(progress: percent)), at: s.now(), retries: 0))
            try claim.writeProgress(next)
            let read = try s.read(job.id)
            #expect(read == next)
            #expect(read.seq > seen)
            seen = read.seq
        }
        try claim.finish(try #require(try s.read(job.id).applying(.exited(status: 0), at: s.now(), retries: 0)))
        #expect(try s.read(job.id).seq > seen)
    }

    @Test(arguments: ContractStoreKind.all)
    func finishingEndsTheJobForgetsItsCancelRequestAndFreesTheSlot(kind: ContractStoreKind) throws {
        let s = try kind.open()
        let kinds = ContractStore.kinds(concurrency: 1)
        let job = try s.submit()
        let waiting = try s.submit()
        let claim = try s.claim(kinds)
        try s.store.requestCancel(job.id)
        #expect(try claim.isCancelRequested())
        #expect(try s.store.cancelRequestedQueuedJobs(now: s.now()).isEmpty)  // running: its runner cancels it
        let canceled = try s.ended(claim, .cancel)
        try claim.finish(canceled)
        #expect(try s.read(job.id) == canceled)
        #expect(try s.store.recoverLostJobs(kinds: kinds, now: s.now()).isEmpty)
        let next = try s.claim(kinds)
        #expect(next.job.id == waiting.id)
        #expect(try !next.isCancelRequested())
        try next.finish(try s.ended(next))
        #expect(try s.store.claimNext(kinds: kinds, now: s.now()) == nil)
        #expect(try s.read(job.id).state == .canceled)
    }

    @Test(arguments: ContractStoreKind.all)
    func finishingQueuedPutsTheJobBackForItsNextAttempt(kind: ContractStoreKind) throws {
        let s = try kind.open()
        let kinds = ContractStore.kinds(concurrency: 1, retries: 1)
        let job = try s.submit()
        let claim = try s.claim(kinds)
        let retry = try s.ended(claim, .exited(status: 1), retries: 1)
        #expect(retry.state == .queued && retry.attempt == 2)
        try claim.finish(retry)
        #expect(try s.read(job.id) == retry)
        let again = try s.claim(kinds)  // the slot is free and the job queued again
        #expect(again.job.id == job.id && again.job.attempt == 2)
        let failed = try s.ended(again, .exited(status: 1), retries: 1)
        try again.finish(failed)
        #expect(try s.read(job.id).state == .failed)
        #expect(try s.store.claimNext(kinds: kinds, now: s.now()) == nil)
    }

    @Test(arguments: ContractStoreKind.all)
    func aCancelRequestOfAnInterruptedAttemptCancelsTheQueuedJob(kind: ContractStoreKind) throws {
        let s = try kind.open()
        let job = try s.submit()
        let claim = try s.claim()
        try s.store.requestCancel(job.id)
        // Put back by a shutdown before its runner saw the request: the request is not lost.
        try claim.finish(try s.ended(claim, .interrupted))
        #expect(try s.store.cancelRequestedQueuedJobs(now: s.now()).map(\.id) == [job.id])
        #expect(try s.read(job.id).state == .canceled)
    }

    @Test(arguments: ContractStoreKind.all.flatMap { kind in [0, 1].map { (kind, $0) } })
    func anAbandonedClaimIsRecoveredAsRunnerLost(kind: ContractStoreKind, retries: Int) throws {
        let s = try kind.open()
        let kinds = ContractStore.kinds(concurrency: 1, retries: retries)
        let job = try s.submit()
        let claim = try s.claim(kinds)
        #expect(try s.store.recoverLostJobs(kinds: kinds, now: s.now()).isEmpty)  // held: alive
        claim.abandon()
        let recovered = try s.store.recoverLostJobs(kinds: kinds, now: s.now())
        #expect(recovered.map(\.id) == [job.id])
        let now = try s.read(job.id)
        #expect(now.error?.code == .runnerLost)
        #expect(try s.store.recoverLostJobs(kinds: kinds, now: s.now()).isEmpty)  // once
        if retries == 0 {
            #expect(now.state == .failed)
            #expect(try s.store.claimNext(kinds: kinds, now: s.now()) == nil)
        } else {
            #expect(now.state == .queued && now.attempt == 2)
            let again = try s.claim(kinds)  // the dead runner's slot is free too
            #expect(again.job.attempt == 2)
            try again.finish(try s.ended(again))
        }
    }

    @Test(arguments: ContractStoreKind.all)
    func aClaimTakenOverCanWriteNothingMore(kind: ContractStoreKind) throws {
        let s = try kind.open()
        let kinds = ContractStore.kinds(retries: 1)
        let job = try s.submit()
        let old = try s.claim(kinds)
        old.abandon()  // as a runner cut off from the store looks to the others
        _ = try s.store.recoverLostJobs(kinds: kinds, now: s.now())
        let successor = try s.claim(kinds)
        #expect(successor.job.attempt == 2)
        let stale = try #require(old.job.applying(.report(ProgressReport(progress: 99)), at: s.now(), retries: 1))
        #expect(throws: StoreError.claimLost(job.id)) { try old.writeProgress(stale) }
        #expect(throws: StoreError.claimLost(job.id)) { try old.appendLog(Array("late\n".utf8)) }
        #expect(throws: StoreError.claimLost(job.id)) { try old.finish(try s.ended(old, retries: 1)) }
        #expect(try s.read(job.id) == successor.job)
        #expect(try s.store.log(job.id, from: 0, maxBytes: 100).bytes.isEmpty)
        try successor.finish(try s.ended(successor, retries: 1))
    }

    @Test(arguments: ContractStoreKind.all)
    func theLogIsAppendedAndReadByteExact(kind: ContractStoreKind) throws {
        let s = try kind.open()
        let job = try s.submit()
        #expect(try s.store.log(job.id, from: 0, maxBytes: 10) == LogRead(bytes: [], atEnd: true))  // none yet
        let claim = try s.claim()
        #expect(try claim.logSize() == 0)
        let bytes: [UInt8] = Array("line one\r\n".utf8) + [0, 0xFF, 0xC3] + Array("\nlast".utf8)
        try claim.appendLog(Array(bytes.prefix(6)))
        try claim.appendLog(Array(bytes.dropFirst(6)))
        #expect(try claim.logSize() == bytes.count)
        #expect(try s.store.log(job.id, from: 0, maxBytes: 1 << 20) == LogRead(bytes: bytes, atEnd: true))
        #expect(try s.store.log(job.id, from: 3, maxBytes: 5) == LogRead(bytes: Array(bytes[3..<8]), atEnd: false))
        #expect(try s.store.log(job.id, from: 8, maxBytes: 100) == LogRead(bytes: Array(bytes[8...]), atEnd: true))
        #expect(try s.store.log(job.id, from: bytes.count + 5, maxBytes: 4) == LogRead(bytes: [], atEnd: true))
        // A retry appends to the same log: its size is where the next attempt starts.
        try claim.finish(try s.ended(claim, .exited(status: 1), retries: 1))
        let again = try s.claim(ContractStore.kinds(retries: 1))
        #expect(try again.logSize() == bytes.count)
        try again.appendLog([0x21])
        #expect(try s.store.log(job.id, from: 0, maxBytes: 1 << 20).bytes == bytes + [0x21])
        try again.finish(try s.ended(again))
    }

    @Test(arguments: ContractStoreKind.all)
    func theWatcherReportsSubmitsWritesLogsAndCancelRequests(kind: ContractStoreKind) throws {
        let s = try kind.open()
        let watcher = try s.store.watch()
        let job = s.fresh()
        try s.store.submit(job)
        #expect(try s.changes(watcher, until: [.submitted(job.id)]).contains(.submitted(job.id)))
        _ = try s.store.ingest()
        let claim = try s.claim()
        #expect(try s.changes(watcher, until: [.job(job.id)]).contains(.job(job.id)))
        try claim.writeProgress(try #require(claim.job.applying(.report(ProgressReport(message: "half")), at: s.now(), retries: 0)))
        #expect(try s.changes(watcher, until: [.job(job.id)]).contains(.job(job.id)))
        try claim.appendLog(Array("out\n".utf8))
        #expect(try s.changes(watcher, until: [.log(job.id)]).contains(.log(job.id)))
        try s.store.requestCancel(job.id)
        #expect(try s.changes(watcher, until: [.cancelRequested(job.id)]).contains(.cancelRequested(job.id)))
        try claim.finish(try #require(try s.read(job.id).applying(.cancel, at: s.now(), retries: 0)))
        #expect(try s.changes(watcher, until: [.job(job.id)]).contains(.job(job.id)))
    }

    @Test(arguments: ContractStoreKind.all)
    func aRunnersWatcherReportsSubmitsAndCancelRequests(kind: ContractStoreKind) throws {
        let s = try kind.open()
        let watcher = try s.store.watchRunnerChanges()
        let job = s.fresh()
        try s.store.submit(job)
        #expect(try s.changes(watcher, until: [.submitted(job.id)]).contains(.submitted(job.id)))
        _ = try s.store.ingest()
        let claim = try s.claim()
        try s.store.requestCancel(job.id)
        #expect(try s.changes(watcher, until: [.cancelRequested(job.id)]).contains(.cancelRequested(job.id)))
        try claim.finish(try #require(try s.read(job.id).applying(.cancel, at: s.now(), retries: 0)))
    }

    @Test(arguments: ContractStoreKind.all)
    func gcRemovesEndedJobsInBatchesOldestFirstAndADryRunRemovesNothing(kind: ContractStoreKind) throws {
        let s = try kind.open()
        var ended: [Job] = []
        for _ in 0..<5 {
            try s.submit()
            let claim = try s.claim()
            try claim.appendLog(Array("output\n".utf8))
            let end = try s.ended(claim)
            try claim.finish(end)
            ended.append(end)
        }
        let cutoff = s.now()
        let late = try s.submit()
        let lateClaim = try s.claim()
        try lateClaim.finish(try s.ended(lateClaim))  // ended after the cutoff: kept
        let queued = try s.submit()  // never ended: kept
        let dry = try s.store.removeFinishedJobs(before: cutoff, limit: 2, dryRun: true)
        #expect(dry.map(\.id) == ended.map(\.id))  // every due job, oldest first
        #expect(try s.store.jobs(JobFilter()).count == 7)
        var removed: [[JobID]] = []
        while true {
            let batch = try s.store.removeFinishedJobs(before: cutoff, limit: 2, dryRun: false)
            removed.append(batch.map(\.id))
            if batch.count < 2 { break }
        }
        #expect(removed == [[ended[0].id, ended[1].id], [ended[2].id, ended[3].id], [ended[4].id]])
        for job in ended {
            #expect(try s.store.job(job.id) == nil)
            #expect(try s.store.log(job.id, from: 0, maxBytes: 100).bytes.isEmpty)
        }
        #expect(Set(try s.store.jobs(JobFilter()).map(\.id)) == [late.id, queued.id])
        #expect(try s.store.removeFinishedJobs(before: cutoff, limit: 2, dryRun: false).isEmpty)
    }
}
