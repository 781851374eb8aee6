import Foundation
import HeraldCore
import HeraldPOSIX
import Synchronization
import Testing
@testable import HeraldStore

@Suite struct DirectoryStoreTests {
    @Test func aListingNeverMissesAJobThatIngestMovesMeanwhile() throws {
        // Ingest writes jobs/ID.json and only then removes new/ID.json: a listing of jobs/ before
        // new/ can look into jobs/ too early and into new/ too late, and miss the job for one request.
        let fixture = try StoreFixture()
        let store = fixture.store
        let submitted = Atomic<Int>(0)
        let shared = ReaderState()
        let mover = Thread {
            for _ in 0..<400 {
                let time = Timestamp(milliseconds: Clock.wallMilliseconds())
                let job = Job(id: JobID(milliseconds: UInt64(time.milliseconds), random: RandomSource.bytes(10)),
                              kind: "report", params: [:], now: time)
                guard (try? store.submit(job)) != nil else { break }
                submitted.add(1, ordering: .releasing)
                _ = try? store.ingest()
            }
            shared.done.store(true, ordering: .releasing)
        }
        mover.start()
        var short: [String] = []
        while !shared.done.load(ordering: .acquiring) {
            let expected = submitted.load(ordering: .acquiring)
            let listed = try store.jobs(JobFilter(limit: 100_000)).count
            if listed < expected { short.append("\(listed) of \(expected)") }
        }
        #expect(short.isEmpty, "listings missed jobs being ingested: \(short.prefix(5))")
        #expect(try store.jobs(JobFilter(limit: 100_000)).count == 400)
    }

    @Test func aReaderNeverSeesATornStatusFile() throws {
        let fixture = try StoreFixture()
        let store = fixture.store
        try fixture.submit()
        _ = try store.ingest()
        let claim = try #require(try store.claimNext(kinds: StoreFixture.kinds(), now: fixture.now()))
        var job = claim.job
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
            try claim.writeProgress(job)
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
        try claim.finish(done)
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
            try claim.succeed(at: fixture.now())  // FIFO is about claim order only
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
        try claim.succeed(at: fixture.now())
        let next = try #require(try store.claimNext(kinds: kinds, now: fixture.now()))
        #expect(next.job.id == second.id)
        try next.succeed(at: fixture.now())
    }

    @Test func aClaimThatFailsToCreateItsLockLeavesNoSlotLocked() throws {
        let fixture = try StoreFixture()
        let store = fixture.store
        let kinds = StoreFixture.kinds(concurrency: 2)
        for _ in 0..<3 { try fixture.submit() }
        _ = try store.ingest()
        // running/ID.lock cannot be created (as on a full disk; a file in running/'s place fails even for root).
        try FileManager.default.removeItem(atPath: store.running)
        try FileDescriptor.open(store.running, O_WRONLY | O_CREAT).close()
        for _ in 0..<5 {
            #expect(throws: StoreError.self) { try store.claimNext(kinds: kinds, now: fixture.now()) }
        }
        try FileSystem.unlink(store.running)
        try FileSystem.makeDirectory(store.running)
        // Both slots are free again (before the fix each failed claim kept one locked for ever): two claims at once.
        let first = try #require(try store.claimNext(kinds: kinds, now: fixture.now()))
        let second = try #require(try store.claimNext(kinds: kinds, now: fixture.now()))
        try first.succeed(at: fixture.now())
        try second.succeed(at: fixture.now())
    }

    @Test func theWebUserCannotOpenAnyLockFileSoItCannotHoldOne() throws {
        let fixture = try StoreFixture()
        try fixture.submit()
        _ = try fixture.store.ingest()
        // Left by an earlier version (group-readable), in a directory laid out as the guide said then.
        try fixture.store.withQueueLock { () throws(StoreError) in }
        try FileDescriptor.open("\(fixture.store.slots)/report.0.lock", O_RDWR | O_CREAT, mode: 0o640).close()
        try fixture.deployForTwoUsers()
        let store = try DirectoryStore(root: fixture.root, create: true)  // the runner starts
        let claim = try #require(try store.claimNext(kinds: StoreFixture.kinds(concurrency: 1), now: fixture.now()))
        defer { try? claim.succeed(at: fixture.now()) }
        // flock needs only a read descriptor: one the web user could open, it could lock for ever,
        // stalling every runner (queue.lock), a kind (a slot) or a dead runner's recovery (running/).
        let locks = ["queue.lock", "slots/report.0.lock", "running/\(claim.job.id.text).lock"]
        let opened = try fixture.asWebUser(locks.map { "if : < '\(fixture.root)/\($0)'; then echo \($0); fi 2>/dev/null" }.joined(separator: "\n"))
        #expect(opened.output == "")
        // What it needs stays reachable: reading a job, submitting.
        #expect(try fixture.asWebUser("cat '\(store.statusPath(claim.job.id))' >/dev/null && : > '\(fixture.root)/tmp/probe'").status == 0)
    }

    @Test func ingestRefusesAFifoASymlinkAndAnOversizedSubmissionWithoutHangingOrReadingThem() throws {
        let fixture = try StoreFixture()
        let store = fixture.store
        func id() -> JobID { JobID(milliseconds: UInt64(fixture.now().milliseconds), random: RandomSource.bytes(10)) }
        // A FIFO nobody writes to: opened for reading without O_NONBLOCK, it hangs ingest under queue.lock.
        let fifo = id()
        #expect(mkfifo(store.submissionPath(fifo), 0o660) == 0)
        // A symlink to a valid job elsewhere (or to /dev/zero, which would exhaust memory).
        let linked = Job(id: id(), kind: "report", params: [:], now: fixture.now())
        let elsewhere = fixture.root + "/elsewhere.json"
        try FileDescriptor.open(elsewhere, O_WRONLY | O_CREAT).closeAfter { (fd) throws(SystemError) in
            try fd.writeAll(DirectoryStore.encode(linked))
        }
        #expect(symlink(elsewhere, store.submissionPath(linked.id)) == 0)
        // A well-formed job far larger than any request herald-fcgi accepts (max_body_bytes 64 KiB).
        let huge = Job(id: id(), kind: "report", params: ["pad": String(repeating: "x", count: 4 << 20)], now: fixture.now())
        try store.submit(huge)
        let fine = try fixture.submit()

        let reasons = Mutex<[String: String]>([:])
        let done = Atomic<Bool>(false)
        let ingest = Thread {
            _ = try? store.ingest(kinds: nil, refused: { name, why in reasons.withLock { $0[name] = why } })
            done.store(true, ordering: .releasing)
        }
        ingest.start()
        for _ in 0..<300 where !done.load(ordering: .acquiring) { Thread.sleep(forTimeInterval: 0.01) }
        let hung = !done.load(ordering: .acquiring)
        if hung { _ = try? FileDescriptor.open(store.submissionPath(fifo), O_RDWR).close() }  // a writer frees it
        while !done.load(ordering: .acquiring) { Thread.sleep(forTimeInterval: 0.01) }
        #expect(!hung, "ingest hung on a FIFO in new/")
        let why = reasons.withLock { $0 }
        #expect(why["\(fifo.text).json"]?.contains("not a regular file") == true)
        #expect(why["\(linked.id.text).json"]?.contains("symbolic link") == true)
        #expect(why["\(huge.id.text).json"]?.contains("bytes") == true)
        for refused in [fifo, linked.id, huge.id] {
            #expect(!FileSystem.exists(store.statusPath(refused)))
            #expect(!FileSystem.exists(store.submissionPath(refused)))
        }
        #expect(try store.job(fine.id)?.state == .queued)
        #expect(FileSystem.exists(store.statusPath(fine.id)))
    }

    @Test func aLeasedSubmissionIsRefusedWithoutStoppingEveryRunnersPass() throws {
        let fixture = try StoreFixture()
        let store = fixture.store
        let fine = try fixture.submit()
        // The web user owns its files in new/, so it may take a write lease on one (fcntl F_SETLEASE).
        // Any other open of it then fails at once under O_NONBLOCK (EWOULDBLOCK) until the kernel breaks
        // the lease 45 s later, and the holder may take it again. Before: ingest threw "state directory
        // unavailable" on every pass, so no runner ingested, recovered, canceled or claimed anything.
        let leased = try fixture.submit()
        signal(SIGIO, SIG_IGN)  // the lease break notifies the holder: this process
        let holder = try FileDescriptor.open(store.submissionPath(leased.id), O_RDONLY)
        defer { holder.close() }
        let setLease: Int32 = 1024  // F_SETLEASE: Linux-specific, not in Swift's Glibc (no _GNU_SOURCE)
        try #require(fcntl(holder.rawValue, setLease, Int32(F_WRLCK)) == 0)
        var reasons: [String: String] = [:]
        #expect(try store.ingest(kinds: nil, refused: { name, why in reasons[name] = why }) == 1)
        #expect(try store.job(fine.id)?.state == .queued)
        #expect(reasons["\(leased.id.text).json"]?.contains("lease") == true)
        #expect(!FileSystem.exists(store.submissionPath(leased.id)))
        #expect(!FileSystem.exists(store.statusPath(leased.id)))
    }

    @Test func listingAndLookingUpReadNewAsIngestDoesNeitherHangingOnAFifoNorFollowingASymlink() throws {
        let fixture = try StoreFixture()
        let store = fixture.store
        let fine = try fixture.submit()
        func id() -> JobID { JobID(milliseconds: UInt64(fixture.now().milliseconds), random: RandomSource.bytes(10)) }
        // What the web user may put in new/ before a runner's next pass: `herald-runner list` and `status`
        // (run as the runner's user, or root) read it too. Before: they opened it like a runner's own file,
        // so a FIFO hung them for ever and a symlink to /dev/zero would have exhausted their memory.
        let fifo = id()
        #expect(mkfifo(store.submissionPath(fifo), 0o660) == 0)
        let elsewhere = Job(id: id(), kind: "report", params: [:], now: fixture.now())
        let target = fixture.root + "/elsewhere.json"
        try FileDescriptor.open(target, O_WRONLY | O_CREAT).closeAfter { (fd) throws(SystemError) in
            try fd.writeAll(DirectoryStore.encode(elsewhere))
        }
        #expect(symlink(target, store.submissionPath(elsewhere.id)) == 0)
        let listed = Mutex<[JobID]?>(nil)
        let lookup = Mutex<String?>(nil)
        let reader = Thread {
            listed.withLock { $0 = (try? store.jobs(JobFilter(limit: 500)))?.map(\.id) }
            do { _ = try store.job(fifo) } catch { lookup.withLock { $0 = "\(error)" } }
        }
        reader.start()
        for _ in 0..<300 where lookup.withLock({ $0 }) == nil { Thread.sleep(forTimeInterval: 0.01) }
        let hung = lookup.withLock { $0 } == nil
        #expect(!hung, "reading new/ hung on a FIFO")
        while lookup.withLock({ $0 }) == nil {  // a writer frees each blocked open
            _ = try? FileDescriptor.open(store.submissionPath(fifo), O_RDWR | O_NONBLOCK).close()
            Thread.sleep(forTimeInterval: 0.01)
        }
        #expect(listed.withLock { $0 } == [fine.id])
        #expect(lookup.withLock { $0 }?.contains("not a regular file") == true)
        #expect(throws: StoreError.self) { try store.job(elsewhere.id) }
    }

    @Test func theRunnerWritesJobStateThroughADirectoryTheWebUserCannotWrite() throws {
        let fixture = try StoreFixture()
        try fixture.deployForTwoUsers()
        let store = try DirectoryStore(root: fixture.root, create: true)  // the runner starts
        let job = try fixture.submit(params: ["month": "2026-10"])
        // In the shared tmp/ (2770, no sticky bit) the web user could swap the runner's temp file for
        // its own between write and rename, and so write any job state: the runner keeps out of tmp/.
        try FileSystem.rename(store.tmp, store.tmp + ".away")
        #expect(try store.ingest() == 1)
        let claim = try #require(try store.claimNext(kinds: StoreFixture.kinds(), now: fixture.now()))
        let done = try #require(claim.job.applying(.exited(status: 0), at: fixture.now(), retries: 0))
        try claim.finish(done)
        #expect(try store.job(job.id) == done)
        // Where it writes instead, the web user can create nothing.
        let runnersTemp = fixture.root + "/runner-tmp"
        #expect(try FileManager.default.attributesOfItem(atPath: runnersTemp)[.posixPermissions] as? Int == 0o700)
        #expect(try fixture.asWebUser(": > '\(runnersTemp)/planted'").status != 0)
        #expect(!FileSystem.exists(runnersTemp + "/planted"))
    }

    @Test func ingestLeavesNewEmptyOfStrayEntriesSoThePathUnitGoesQuiet() throws {
        let fixture = try StoreFixture()
        let store = fixture.store
        let job = try fixture.submit()
        // What an operator, an editor or a broken client may leave: none is a submission.
        let strays = ["notes.txt", ".hidden", "\(job.id.text).json.part", "not-a-job-id.json", "pipe", "link", "empty-dir"]
        for name in strays.prefix(4) { try FileDescriptor.open("\(store.new)/\(name)", O_WRONLY | O_CREAT).close() }
        #expect(mkfifo("\(store.new)/pipe", 0o660) == 0)
        #expect(symlink("/dev/zero", "\(store.new)/link") == 0)
        try FileSystem.makeDirectory("\(store.new)/empty-dir")
        var reasons: [String: String] = [:]
        #expect(try store.ingest(kinds: nil, refused: { name, why in reasons[name] = why }) == 1)
        // systemd's DirectoryNotEmpty=new/ would start the runner again and again until its start limit failed it.
        #expect(try FileSystem.list(store.new) == [])
        #expect(Set(reasons.keys) == Set(strays))
        #expect(reasons.values.allSatisfy { $0.contains("not a submission") })
        #expect(try store.job(job.id)?.state == .queued)
    }

    @Test func anEmptyDirectoryNamedLikeASubmissionIsRemovedToo() throws {
        let fixture = try StoreFixture()
        let store = fixture.store
        let job = try fixture.submit()
        // Named ID.json, so not a stray by name: refused as not a regular file, but unlink(2) cannot
        // remove a directory. Before: it stayed, logged at every pass, and the .path unit kept firing.
        let id = JobID(milliseconds: UInt64(fixture.now().milliseconds), random: RandomSource.bytes(10))
        try FileSystem.makeDirectory(store.submissionPath(id))
        var reasons: [String: String] = [:]
        #expect(try store.ingest(kinds: nil, refused: { name, why in reasons[name] = why }) == 1)
        #expect(try FileSystem.list(store.new) == [])
        let why = try #require(reasons["\(id.text).json"])
        #expect(why.contains("not a regular file") && why.hasSuffix("removed"), "\(why)")
        #expect(try store.job(job.id)?.state == .queued)
    }

    @Test func anEmptyDirectoryNamedLikeAnExistingJobsSubmissionIsRemovedToo() throws {
        let fixture = try StoreFixture()
        let store = fixture.store
        let job = try fixture.submit()
        #expect(try store.ingest() == 1)
        // That job's id again, as a directory: refused (the job exists), and removed only once jobs/ is
        // durable, with the others. Before: removed with unlink(2), so it stayed, like the one above.
        try FileSystem.makeDirectory(store.submissionPath(job.id))
        var reasons: [String: String] = [:]
        #expect(try store.ingest(kinds: nil, refused: { name, why in reasons[name] = why }) == 0)
        #expect(try FileSystem.list(store.new) == [])
        let why = try #require(reasons["\(job.id.text).json"])
        #expect(why.contains("exists already") && why.hasSuffix("removed"), "\(why)")
        #expect(try store.job(job.id)?.state == .queued)
    }

    @Test func aSubmissionWhoseParamsTheConfigNoLongerTakesFailsVisiblyInsteadOfVanishing() throws {
        let fixture = try StoreFixture()
        let store = fixture.store
        // Answered 201 under the config of then; the regex was tightened before a runner saw it.
        let job = try fixture.submit(params: ["month": "2026-13"])
        let today = ["report": KindConfig(name: "report", executor: .command(["/bin/true"]),
                                          params: ["month": try ParamPattern("^[0-9]{4}-(0[1-9]|1[0-2])$")])]
        var reasons: [String] = []
        #expect(try store.ingest(kinds: today, refused: { _, why in reasons.append(why) }) == 0)
        let failed = try #require(try store.job(job.id))
        #expect(failed.state == .failed)
        #expect(failed.error?.code == .spawnFailed)
        #expect(failed.error?.message.contains("param 'month'") == true)
        #expect(failed.finishedAt != nil)
        #expect(failed.params == job.params)
        #expect(failed.seq > job.seq)
        #expect(try FileSystem.list(store.new) == [])
        #expect(!FileSystem.exists(store.marker(job.id)))
        #expect(reasons.count == 1 && reasons[0].contains("param 'month'"))
    }

    @Test func ingestCommitsAsItReadsSoAFloodedNewIsNeverHeldWhole() throws {
        let fixture = try StoreFixture()
        // With max_body_bytes of 8 MiB a submission may be 32 MiB: ingest may hold one at a time.
        let store = try DirectoryStore(root: fixture.root, create: true, maxBodyBytes: 8 << 20)
        // Fresh jobs whose params the kind refuses (reported when committed, under queue.lock) among
        // strays (reported as they are read). Before: every submission in new/ was read and kept in
        // memory before the first commit, so a backlog of many large ones (a flood while no runner ran)
        // could exhaust a runner's memory at every start, and nothing would ever be ingested.
        let kinds = ["report": KindConfig(name: "report", executor: .command(["/bin/true"]),
                                          params: ["month": try ParamPattern("^[0-9]{4}-[0-9]{2}$")])]
        for n in 0..<10 {
            let time = fixture.now()
            let job = Job(id: JobID(milliseconds: UInt64(time.milliseconds), random: RandomSource.bytes(10)), kind: "report",
                          params: ["month": "never"], now: time)
            try store.submit(job)
            try FileDescriptor.open("\(store.new)/stray-\(n)", O_WRONLY | O_CREAT).close()
        }
        var order: [String] = []
        #expect(try store.ingest(kinds: kinds, refused: { _, why in order.append(why.contains("not a submission") ? "read" : "committed") }) == 0)
        #expect(order.count == 20)
        let firstCommit = try #require(order.firstIndex(of: "committed"))
        let lastRead = try #require(order.lastIndex(of: "read"))
        #expect(firstCommit < lastRead, "ingest read all of new/ before committing any of it: \(order)")
        #expect(try FileSystem.list(store.new) == [])
    }

    @Test func aBacktrackingParamRegexIsCheckedWithoutHoldingTheQueueLock() throws {
        let fixture = try StoreFixture()
        let store = fixture.store
        let waiting = try fixture.submit()
        _ = try store.ingest()
        // ^(a+)+$ against 16 a's and a "!" backtracks for seconds (an operator's regex; submit checked it too).
        let kinds = StoreFixture.kinds().merging(["slow": KindConfig(name: "slow", executor: .command(["/bin/true"]),
                                                                     params: ["v": try ParamPattern("^(a+)+$")])]) { $1 }
        try fixture.submit("slow", params: ["v": String(repeating: "a", count: 16) + "!"])
        let ingested = Atomic<Bool>(false)
        let slowIngest = Thread {
            _ = try? store.ingest(kinds: kinds, refused: { _, _ in })
            ingested.store(true, ordering: .releasing)
        }
        slowIngest.start()
        Thread.sleep(forTimeInterval: 0.3)  // into the regex
        // Another runner's pass meanwhile: it must not wait for that regex (before: it waited on queue.lock).
        let claim = try #require(try store.claimNext(kinds: kinds, now: fixture.now()))
        let waitedForIt = ingested.load(ordering: .acquiring)
        #expect(!waitedForIt, "claimNext waited for another runner's param check")
        #expect(claim.job.id == waiting.id)
        try claim.succeed(at: fixture.now())
        while !ingested.load(ordering: .acquiring) { Thread.sleep(forTimeInterval: 0.05) }
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
            try again.succeed(at: fixture.now())
        }
    }

    @Test func aClaimWhoseLockFileWasReplacedIsLostAndWritesNothing() throws {
        let fixture = try StoreFixture()
        let store = fixture.store
        let job = try fixture.submit()
        _ = try store.ingest()
        let claim = try #require(try store.claimNext(kinds: StoreFixture.kinds(), now: fixture.now()))
        let progress = try #require(claim.job.applying(.report(ProgressReport(progress: 50)), at: fixture.now(), retries: 0))
        try claim.writeProgress(progress)
        // The lock file removed and made again (by hand, a wiped running/): this runner's flock guards nothing now.
        let lockPath = "\(store.running)/\(job.id.text).lock"
        try FileSystem.unlink(lockPath)
        try FileDescriptor.open(lockPath, O_WRONLY | O_CREAT).close()
        let late = try #require(progress.applying(.report(ProgressReport(progress: 60)), at: fixture.now(), retries: 0))
        #expect(throws: StoreError.claimLost(job.id)) { try claim.writeProgress(late) }
        #expect(throws: StoreError.claimLost(job.id)) { try claim.finish(try #require(late.applying(.exited(status: 0), at: fixture.now(), retries: 0))) }
        #expect(try store.job(job.id) == progress)
        claim.abandon()
        #expect(FileSystem.exists(lockPath))  // left for recovery to find the job by
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
        let claim = try #require(try store.claimNext(kinds: StoreFixture.kinds(), now: fixture.now()))
        #expect(try changes(watcher).contains(.job(job.id)))
        var next = claim.job
        next.message = "a longer message than before"
        next.seq += 1
        try claim.writeProgress(next)
        #expect(try changes(watcher).contains(.job(job.id)))
        try store.requestCancel(job.id)
        #expect(try changes(watcher).contains(.cancelRequested(job.id)))
        // A status file removed (by hand, a wiped directory): its streams must learn it.
        try FileSystem.unlink(store.statusPath(job.id))
        #expect(try changes(watcher).contains(.job(job.id)))
    }

    @Test func aRunnersWatcherLeavesOutStatusAndLogWrites() throws {
        let fixture = try StoreFixture()
        let store = fixture.store
        let watcher = try store.watchRunnerChanges()
        let job = try fixture.submit()
        _ = try store.ingest()
        let claim = try #require(try store.claimNext(kinds: StoreFixture.kinds(), now: fixture.now()))
        var next = claim.job
        next.message = "half"
        next.seq += 1
        try claim.writeProgress(next)
        try claim.appendLog(Array("out\n".utf8))
        try store.requestCancel(job.id)
        // inotify queues an event within the syscall that caused it: all are there to read now.
        let found = Set(try watcher.changes())
        #expect(found == [.submitted(job.id), .cancelRequested(job.id)])
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
            try store.writeTransition(try #require(job.applying(.cancel, at: fixture.now(), retries: 0)))
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
        #expect(reasons == ["its kind is not spelled as configured: removed"])
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
