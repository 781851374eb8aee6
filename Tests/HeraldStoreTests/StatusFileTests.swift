import Foundation
import HeraldCore
import HeraldPOSIX
import Synchronization
import Testing
@testable import HeraldStore

/// The status file protocol (docs/PROTOCOL.md, "Durable and volatile states"): transitions are fsynced
/// and kept as durable/ID.json, progress is not, and a progress file a crash cut short is read as the
/// job's last transition.
@Suite struct StatusFileTests {
    /// The paths a store fsynced (directories with a trailing slash).
    final class SyncLog: Sendable {
        let paths = Mutex<[String]>([])
        var all: [String] { paths.withLock { $0 } }
        func clear() { paths.withLock { $0 = [] } }
    }

    /// A store whose fsyncs are recorded, and the claim of a running job in it.
    static func runningJob() throws -> (StoreFixture, any JobClaim, SyncLog) {
        let synced = SyncLog()
        let recorder = StoreSync(
            file: { (fd, path) throws(SystemError) in
                try fd.fsync()
                synced.paths.withLock { $0.append(path) }
            },
            directory: { (dir) throws(SystemError) in
                try FileSystem.syncDirectory(dir)
                synced.paths.withLock { $0.append(dir + "/") }
            })
        let fixture = try StoreFixture(sync: recorder)
        try fixture.submit()
        #expect(try fixture.store.ingest() == 1)
        let claim = try #require(try fixture.store.claimNext(kinds: StoreFixture.kinds(), now: fixture.now()))
        return (fixture, claim, synced)
    }

    @Test func aTransitionIsFsyncedWithItsNamesAndProgressIsNot() throws {
        let (fixture, claim, synced) = try Self.runningJob()
        let running = claim.job
        let store = fixture.store
        // The claim's running state: the file, then jobs/ and durable/, where its two names are.
        let claimSyncs = synced.all
        #expect(claimSyncs.contains { $0.hasPrefix(store.runnerTmp + "/") && !$0.hasSuffix("/") })
        #expect(claimSyncs.contains(store.jobsDir + "/"))
        #expect(claimSyncs.contains(store.durableDir + "/"))
        synced.clear()

        var job = running
        for step in 1...5 {
            job = try #require(job.applying(.report(ProgressReport(progress: Double(step * 10))), at: fixture.now(), retries: 0))
            try claim.writeProgress(job)
        }
        #expect(synced.all == [], "progress writes are not fsynced")
        #expect(try store.job(job.id)?.progress == 50)

        let done = try #require(job.applying(.exited(status: 0), at: fixture.now(), retries: 0))
        try store.writeTransition(done)
        let endSyncs = synced.all
        #expect(endSyncs.count == 3, "the file, jobs/ and durable/: \(endSyncs)")
        #expect(endSyncs.suffix(2) == [store.jobsDir + "/", store.durableDir + "/"])
        #expect(try store.job(job.id) == done)
        #expect(try Self.durableCopy(store, job.id) == done)
    }

    @Test func progressNeverTouchesTheDurableCopy() throws {
        let (fixture, claim, _) = try Self.runningJob()
        let running = claim.job
        let store = fixture.store
        #expect(try Self.durableCopy(store, running.id) == running)
        let progressed = try #require(running.applying(.report(ProgressReport(progress: 40)), at: fixture.now(), retries: 0))
        try claim.writeProgress(progressed)
        #expect(try store.job(running.id) == progressed)
        #expect(try Self.durableCopy(store, running.id) == running)
    }

    @Test func progressTakesTwoFilesForTheWholeRunAndTheEndRemovesTheSpare() throws {
        let (fixture, claim, _) = try Self.runningJob()
        let running = claim.job
        let store = fixture.store
        var job = running
        var shown: [UInt64] = []
        for step in 1...6 {
            job = try #require(job.applying(.report(ProgressReport(progress: Double(step))), at: fixture.now(), retries: 0))
            try claim.writeProgress(job)
            shown.append(try Self.inode(store.statusPath(job.id)))
            #expect(try store.job(job.id) == job)
        }
        // The first write renames (the transition's file keeps only its durable name), then two files trade places.
        #expect(Set(shown).count == 2, "inodes shown: \(shown)")
        #expect(shown[1] != shown[2] && shown[1] == shown[3] && shown[2] == shown[4])
        #expect(try Self.durableCopy(store, job.id) == running)
        #expect(FileSystem.exists(store.progressPath(job.id)))

        let done = try #require(job.applying(.exited(status: 0), at: fixture.now(), retries: 0))
        try store.writeTransition(done)
        #expect(!FileSystem.exists(store.progressPath(job.id)))
        #expect(try Self.inode(store.statusPath(job.id)) == Self.inode(store.durablePath(job.id)))
    }

    @Test func aRetrysFirstProgressLeavesItsRunningStateDurable() throws {
        let fixture = try StoreFixture()
        let store = fixture.store
        try fixture.submit()
        _ = try store.ingest()
        let kinds = StoreFixture.kinds(retries: 1)
        let first = try #require(try store.claimNext(kinds: kinds, now: fixture.now()))
        for step in 1...3 {
            try first.writeProgress(try #require(first.job.applying(.report(ProgressReport(progress: Double(step))), at: fixture.now(), retries: 1)))
        }
        try first.finish(try #require(first.job.applying(.exited(status: 1), at: fixture.now(), retries: 1)))
        // The retry, claimed in the same process: its first write must not trade the transition's file away.
        let again = try #require(try store.claimNext(kinds: kinds, now: fixture.now()))
        #expect(again.job.attempt == 2)
        try again.writeProgress(try #require(again.job.applying(.report(ProgressReport(progress: 5)), at: fixture.now(), retries: 1)))
        try again.writeProgress(try #require(again.job.applying(.report(ProgressReport(progress: 6)), at: fixture.now(), retries: 1)))
        #expect(try Self.durableCopy(store, again.job.id) == again.job)
        #expect(try store.job(again.job.id)?.progress == 6)
    }

    /// What a power cut can leave of a progress write that was renamed but never fsynced: nothing,
    /// half of it, or blocks of zeros (XFS; ext4 without auto_da_alloc).
    static let cutShort: [[UInt8]] = [[], Array("{\"id\": \"01".utf8), [UInt8](repeating: 0, count: 512)]

    @Test(arguments: cutShort) func aProgressFileACrashCutShortReadsAsTheLastTransition(_ leftover: [UInt8]) throws {
        let (fixture, claim, _) = try Self.runningJob()
        let running = claim.job
        let store = fixture.store
        let progressed = try #require(running.applying(.report(ProgressReport(progress: 40)), at: fixture.now(), retries: 0))
        try claim.writeProgress(progressed)
        try Self.overwrite(store.statusPath(running.id), with: leftover)

        #expect(try store.job(running.id) == running)
        #expect(try store.jobs(JobFilter(limit: 10)).map(\.id) == [running.id])
        #expect(try store.jobCounts() == [.running: 1])
    }

    @Test(arguments: cutShort) func recoveryRetriesAJobWhoseProgressFileACrashCutShort(_ leftover: [UInt8]) throws {
        let fixture = try StoreFixture()
        let store = fixture.store
        try fixture.submit()
        _ = try store.ingest()
        let kinds = StoreFixture.kinds(retries: 1)
        let claim = try #require(try store.claimNext(kinds: kinds, now: fixture.now()))
        let progressed = try #require(claim.job.applying(.report(ProgressReport(progress: 40)), at: fixture.now(), retries: 1))
        try claim.writeProgress(progressed)
        try Self.overwrite(store.statusPath(claim.job.id), with: leftover)
        claim.abandon()  // the runner dies

        let recovered = try store.recoverLostJobs(kinds: kinds, now: fixture.now())
        #expect(recovered.map(\.state) == [.queued])
        #expect(recovered.first?.attempt == 2)
        #expect(recovered.first?.error?.code == .runnerLost)
        let again = try #require(try store.claimNext(kinds: kinds, now: fixture.now()))
        #expect(again.job.id == claim.job.id)
    }

    @Test func aStatusFileThatIsNoJobWithoutADurableCopyStaysAnError() throws {
        let fixture = try StoreFixture()
        let job = try fixture.submit()
        _ = try fixture.store.ingest()
        try FileSystem.unlink(fixture.store.durablePath(job.id))  // as a job written before durable/ existed
        try Self.overwrite(fixture.store.statusPath(job.id), with: [])
        #expect(throws: StoreError.self) { try fixture.store.job(job.id) }
    }

    @Test func gcRemovesTheDurableCopy() throws {
        let (fixture, claim, _) = try Self.runningJob()
        let running = claim.job
        let store = fixture.store
        let done = try #require(running.applying(.exited(status: 0), at: Timestamp(milliseconds: 1_764_000_000_500), retries: 0))
        try store.writeTransition(done)
        try store.remove(done.id)
        #expect(!FileSystem.exists(store.durablePath(done.id)))
        #expect(!FileSystem.exists(store.statusPath(done.id)))
    }

    static func inode(_ path: String) throws -> UInt64 {
        try #require(FileManager.default.attributesOfItem(atPath: path)[.systemFileNumber] as? UInt64)
    }

    static func durableCopy(_ store: DirectoryStore, _ id: JobID) throws -> Job? {
        guard let bytes = try FileSystem.read(store.durablePath(id)) else { return nil }
        return try store.decode(bytes, store.durablePath(id))
    }

    /// Replaces the file's content in place, as a crash would leave it (not through a new file).
    static func overwrite(_ path: String, with bytes: [UInt8]) throws {
        let fd = try FileDescriptor.open(path, O_WRONLY | O_TRUNC)
        try fd.closeAfter { (fd) throws(SystemError) in try fd.writeAll(bytes) }
    }
}
