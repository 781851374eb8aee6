import Foundation
import HeraldCore
import HeraldPOSIX
import Synchronization
import Testing
@testable import HeraldStore

@Suite struct DirectoryStoreTests {
    @Test func aReaderNeverSeesATornStatusFile() throws {
        let fixture = try StoreFixture()
        let store = fixture.store
        var job = try fixture.submit()
        _ = try store.ingest()
        let id = job.id
        let shared = ReaderState()
        let reader = Thread {
            while !shared.done.load(ordering: .acquiring) {
                do {
                    guard try store.job(id) != nil else { throw StoreError.corrupt("status file missing") }
                    shared.outcome.withLock { $0.reads += 1 }
                } catch {
                    shared.outcome.withLock { $0.failure = "\(error)" }
                    return
                }
            }
        }
        reader.start()
        for n in 0..<2000 {
            job.seq += 1
            job.message = String(repeating: "x", count: n % 500)  // sizes vary, so a torn file would show
            try store.write(job, durable: false)
        }
        shared.done.store(true, ordering: .releasing)
        while !reader.isFinished { Thread.sleep(forTimeInterval: 0.01) }
        let result = shared.outcome.withLock { $0 }
        #expect(result.failure == nil)
        #expect(result.reads > 0)
        #expect(try store.job(job.id)?.seq == job.seq)
    }

    @Test func submitIngestClaimWriteRelease() throws {
        let fixture = try StoreFixture()
        let store = fixture.store
        let job = try fixture.submit(params: ["month": "2026-10"])
        #expect(try store.job(job.id) == job)  // visible while still in new/
        #expect(try store.ingest() == 1)
        #expect(try store.ingest() == 0)
        let claim = try #require(try store.claimNext(kinds: StoreFixture.kinds(), now: fixture.now()))
        #expect(claim.job.id == job.id)
        #expect(claim.job.state == .running)
        #expect(try store.job(job.id)?.state == .running)
        #expect(try store.claimNext(kinds: StoreFixture.kinds(), now: fixture.now()) == nil)
        let done = try #require(claim.job.applying(.exited(status: 0), at: fixture.now(), retries: 0))
        try store.write(done, durable: true)
        claim.release()
        #expect(try store.job(job.id) == done)
        #expect(try FileSystem.list(store.running).isEmpty)
        #expect(try store.recoverLostJobs(kinds: StoreFixture.kinds(), now: fixture.now()).isEmpty)
        #expect(try store.jobs(JobFilter(state: .succeeded)).map(\.id) == [job.id])
    }

    @Test func theQueueIsFirstInFirstOut() throws {
        let fixture = try StoreFixture()
        let store = fixture.store
        let jobs = try (0..<5).map { _ in try fixture.submit() }
        _ = try store.ingest()
        var claimed: [JobID] = []
        while let claim = try store.claimNext(kinds: StoreFixture.kinds(), now: fixture.now()) {
            claimed.append(claim.job.id)
            claim.release()  // left running: FIFO is about claim order only
        }
        #expect(claimed == jobs.map(\.id))
    }

    @Test func aKindsConcurrencyHoldsWhileAClaimIsHeld() throws {
        let fixture = try StoreFixture()
        let store = fixture.store
        let kinds = StoreFixture.kinds(concurrency: 1)
        let first = try fixture.submit()
        let second = try fixture.submit()
        _ = try store.ingest()
        let claim = try #require(try store.claimNext(kinds: kinds, now: fixture.now()))
        #expect(claim.job.id == first.id)
        #expect(try store.claimNext(kinds: kinds, now: fixture.now()) == nil)
        claim.release()
        let next = try #require(try store.claimNext(kinds: kinds, now: fixture.now()))
        #expect(next.job.id == second.id)
        next.release()
    }

    @Test func aQueuedJobIsCanceledOnRequest() throws {
        let fixture = try StoreFixture()
        let store = fixture.store
        let job = try fixture.submit()
        _ = try store.ingest()
        try store.requestCancel(job.id)
        #expect(store.isCancelRequested(job.id))
        let canceled = try store.cancelRequestedQueuedJobs(now: fixture.now())
        #expect(canceled.map(\.id) == [job.id])
        #expect(try store.job(job.id)?.state == .canceled)
        #expect(try store.job(job.id)?.error?.code == .canceled)
        #expect(!store.isCancelRequested(job.id))
        #expect(try store.claimNext(kinds: StoreFixture.kinds(), now: fixture.now()) == nil)
    }

    @Test(arguments: [0, 1])
    func aClaimWhoseRunnerDiedIsRecovered(retries: Int) throws {
        let fixture = try StoreFixture()
        let store = fixture.store
        let kinds = StoreFixture.kinds(concurrency: 1, retries: retries)
        let job = try fixture.submit()
        _ = try store.ingest()
        let claim = try #require(try store.claimNext(kinds: kinds, now: fixture.now()) as? DirectoryClaim)
        #expect(try store.recoverLostJobs(kinds: kinds, now: fixture.now()).isEmpty)  // held: alive
        claim.abandon()
        let recovered = try store.recoverLostJobs(kinds: kinds, now: fixture.now())
        #expect(recovered.map(\.id) == [job.id])
        let now = try #require(try store.job(job.id))
        #expect(now.error?.code == .runnerLost)
        if retries == 0 {
            #expect(now.state == .failed)
            #expect(try store.claimNext(kinds: kinds, now: fixture.now()) == nil)
        } else {
            #expect(now.state == .queued)
            #expect(now.attempt == 2)
            // The dead runner's slot is free again too.
            let again = try #require(try store.claimNext(kinds: kinds, now: fixture.now()))
            #expect(again.job.attempt == 2)
            again.release()
        }
    }

    @Test(arguments: [false, true])
    func theWatcherReportsChanges(polling: Bool) throws {
        let fixture = try StoreFixture()
        let store = fixture.store
        let watcher = try DirectoryWatcher(store: store, forcePolling: polling)
        #expect((watcher.fd == nil) == polling)
        let job = try fixture.submit()
        #expect(try changes(watcher).contains(.submitted(job.id)))
        _ = try store.ingest()
        #expect(try changes(watcher).contains(.job(job.id)))
        var next = job
        next.message = "a longer message than before"
        next.seq += 1
        try store.write(next, durable: false)
        #expect(try changes(watcher).contains(.job(job.id)))
        try store.requestCancel(job.id)
        #expect(try changes(watcher).contains(.cancelRequested(job.id)))
        // A status file removed (by hand, a wiped directory): its streams must learn it.
        try FileSystem.unlink(store.statusPath(job.id))
        #expect(try changes(watcher).contains(.job(job.id)))
    }

    @Test func aWatcherWhoseQueueOverflowedReportsEverything() throws {
        let fixture = try StoreFixture()
        let store = fixture.store
        let watcher = try DirectoryWatcher(store: store, forcePolling: false)
        let queued = try fixture.submit()
        let waiting = try fixture.submit()
        _ = try store.ingest()
        let submitted = try fixture.submit()
        try FileDescriptor.open(store.logPath(queued.id), O_WRONLY | O_CREAT).close()
        try store.requestCancel(waiting.id)
        let overflow = Inotify.Event(watch: -1, mask: UInt32(IN_Q_OVERFLOW), name: "")
        let changes = Set(watcher.changes(from: [overflow]))
        #expect(changes == [.job(queued.id), .job(waiting.id), .submitted(submitted.id), .log(queued.id), .cancelRequested(waiting.id)])
    }

    @Test func countsAndFiltersStayTrueAcrossEndingGcAndForgedSubmissions() throws {
        let fixture = try StoreFixture()
        let store = fixture.store
        let kinds = StoreFixture.kinds()
        let ended = try fixture.submit()
        let other = try fixture.submit("export")
        let waiting = try fixture.submit()
        _ = try store.ingest()
        for id in [ended.id, other.id] {
            let job = try #require(try store.job(id))
            try store.write(try #require(job.applying(.cancel, at: fixture.now(), retries: 0)), durable: true)
        }
        #expect(try store.jobCounts() == [.canceled: 2, .queued: 1])
        // Asked twice: the second answer comes partly from what the store remembers of ended jobs.
        for _ in 0..<2 {
            #expect(try store.jobs(JobFilter(state: .canceled)).map(\.id) == [other.id, ended.id])
            #expect(try store.jobs(JobFilter(state: .canceled, kind: "export")).map(\.id) == [other.id])
            #expect(try store.jobs(JobFilter(state: .queued)).map(\.id) == [waiting.id])
            #expect(try store.jobs(JobFilter()).count == 3)
        }
        // gc removes an ended job: it is no longer counted or listed.
        try store.remove(ended.id)
        #expect(try store.jobCounts() == [.canceled: 1, .queued: 1])
        #expect(try store.jobs(JobFilter(state: .canceled)).map(\.id) == [other.id])
        // A forged file in new/ (the web user can write there) that claims to have ended is counted
        // as what it says while it is there, but never remembered: once ingest refuses it, it is gone.
        var forged = try fixture.submit()
        forged.state = .succeeded
        try store.submit(forged)
        #expect(try store.jobCounts() == [.canceled: 1, .queued: 1, .succeeded: 1])
        _ = try store.ingest(kinds: kinds, refused: { _, _ in })
        #expect(try store.jobCounts() == [.canceled: 1, .queued: 1])
        #expect(try store.jobs(JobFilter(state: .succeeded)).isEmpty)
    }

    @Test func ingestWritesTheRunnersOwnCopyNotTheSubmittedFile() throws {
        let fixture = try StoreFixture()
        let store = fixture.store
        let job = try fixture.submit(params: ["month": "2026-10"])
        // The web user keeps a descriptor on its submission (or could reopen it, being its owner).
        let submitted = try FileDescriptor.open(store.submissionPath(job.id), O_WRONLY)
        defer { submitted.close() }
        #expect(try store.ingest() == 1)
        #expect(!FileSystem.exists(store.submissionPath(job.id)))
        try submitted.writeAll(Array(#"{"id":"forged"}"#.utf8))
        #expect(try store.job(job.id) == job)
        #expect(try store.claimNext(kinds: StoreFixture.kinds(), now: fixture.now())?.job.id == job.id)
    }

    @Test func aLogReadSaysWhetherItReachedTheEnd() throws {
        let fixture = try StoreFixture()
        let store = fixture.store
        let job = try fixture.submit()
        #expect(try store.log(job.id, from: 0, maxBytes: 4) == LogRead(bytes: [], atEnd: true))  // no log yet
        try FileDescriptor.open(store.logPath(job.id), O_WRONLY | O_CREAT).closeAfter { (fd) throws(SystemError) in
            try fd.writeAll(Array("0123456789".utf8))
        }
        #expect(try store.log(job.id, from: 0, maxBytes: 4) == LogRead(bytes: Array("0123".utf8), atEnd: false))
        #expect(try store.log(job.id, from: 4, maxBytes: 6) == LogRead(bytes: Array("456789".utf8), atEnd: true))
        #expect(try store.log(job.id, from: 10, maxBytes: 4) == LogRead(bytes: [], atEnd: true))
        #expect(try store.log(job.id, from: 99, maxBytes: 4) == LogRead(bytes: [], atEnd: true))
    }

    @Test func aCorruptStatusFileCostsOnlyItsOwnJob() throws {
        let fixture = try StoreFixture()
        let store = fixture.store
        let broken = try fixture.submit()
        let fine = try fixture.submit()
        _ = try store.ingest()
        try FileDescriptor.open(store.statusPath(broken.id), O_WRONLY | O_TRUNC).closeAfter { (fd) throws(SystemError) in
            try fd.writeAll(Array("not json".utf8))
        }
        // Its marker, a cancel request and a free lock (as a dead runner leaves) all lead to it.
        try store.enqueue(broken.id)
        try FileDescriptor.open(store.cancelPath(broken.id), O_WRONLY | O_CREAT).close()
        try FileDescriptor.open("\(store.running)/\(broken.id.text).lock", O_WRONLY | O_CREAT).close()
        #expect(try store.recoverLostJobs(kinds: StoreFixture.kinds(), now: fixture.now()).isEmpty)
        #expect(try store.cancelRequestedQueuedJobs(now: fixture.now()).isEmpty)
        #expect(try store.claimNext(kinds: StoreFixture.kinds(), now: fixture.now())?.job.id == fine.id)
        // Asked directly, the broken job names its problem; nothing pointing at it was thrown away.
        #expect(throws: StoreError.self) { try store.job(broken.id) }
        #expect(FileSystem.exists(store.marker(broken.id)))
        #expect(FileSystem.exists(store.cancelPath(broken.id)))
        #expect(FileSystem.exists("\(store.running)/\(broken.id.text).lock"))
    }

    @Test func aSubmissionMustSpellItsKindAsConfigured() throws {
        let fixture = try StoreFixture()
        let kinds = ["Kpi": KindConfig(name: "Kpi", executor: .command(["/bin/true"]), concurrency: 1)]
        try fixture.submit("\u{212A}pi")  // KELVIN SIGN: canonically equal, other slot lock files
        var reasons: [String] = []
        #expect(try fixture.store.ingest(kinds: kinds, refused: { _, why in reasons.append(why) }) == 0)
        #expect(reasons == ["its kind is not spelled as configured"])
    }

    /// The watcher's changes, waiting briefly for inotify to deliver them.
    private func changes(_ watcher: DirectoryWatcher) throws -> [StoreChange] {
        for _ in 0..<50 {
            let found = try watcher.changes()
            if !found.isEmpty { return found }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return []
    }
}

/// What the reader thread shares with the test.
private final class ReaderState: Sendable {
    let done = Atomic<Bool>(false)
    let outcome = Mutex<(reads: Int, failure: String?)>((0, nil))
}
