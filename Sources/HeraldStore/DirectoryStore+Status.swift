import Glibc
import HeraldCore
import HeraldPOSIX

// Status files: durable transitions, volatile progress (docs/PROTOCOL.md, "Durable and volatile states").
//
// A transition (queued, running, a retry, an end) is fsynced and renamed over jobs/ID.json, and the same
// file is linked as durable/ID.json. Progress is renamed over jobs/ID.json without fsync: a power cut may
// lose it, and on a filesystem that allocates late (XFS; ext4 with noauto_da_alloc) leave jobs/ID.json
// empty or torn. Readers then read durable/ID.json, which no progress write touches: the job is there,
// at its last transition.
extension DirectoryStore {
    /// The job's status: jobs/ID.json, or its durable copy when jobs/ID.json holds no job (a crash cut a
    /// progress write short); nil when the job has no status file.
    func status(_ id: JobID) throws(StoreError) -> Job? {
        do { return try read(statusPath(id)) } catch {
            guard case .corrupt = error else { throw error }
            // A reader that stalled for an interval between opening jobs/ID.json and reading it may have
            // read a progress file being rewritten (`ProgressFiles`): the path has a whole one now.
            if let again = try? read(statusPath(id)) { return again }
            guard let durable = try? read(durablePath(id)) else { throw error }
            return durable
        }
    }

    /// Writes a state the job must keep, fsynced, as jobs/ID.json and durable/ID.json. Its names are
    /// durable once jobs/ and durable/ are synced: `syncNames` does it now; ingest does it once per batch.
    func writeDurableStatus(_ job: Job, syncNames: Bool) throws(StoreError) {
        try replaceAtomically(statusPath(job.id), with: DirectoryStore.encode(job), tempDir: runnerTmp,
                              linkedAs: durablePath(job.id), syncDirectories: syncNames ? [jobsDir, durableDir] : [])
        // The job's spare progress file, if it ran: gone with the attempt (after a crash, with the next transition).
        unlinkQuietly(progressPath(job.id))
    }

    func progressPath(_ id: JobID) -> String { "\(runnerTmp)/\(id.text).progress" }
}

/// A running job's progress as its claim writes it: over jobs/ID.json, not fsynced (durable/ID.json
/// keeps the last transition). Used by the claim's thread alone, one write at a time.
///
/// The state is written to the job's spare file `runner-tmp/ID.progress`, which then trades places
/// with jobs/ID.json (renameat2 RENAME_EXCHANGE): the state shown before becomes the spare for the
/// next write. So a job's progress takes two files for its whole run, and both stay open from their
/// first write to the claim's end (no open and close per write). A rename over a fresh file each time
/// allocated an inode and freed one per write, which ext4 without a journal pays for by scanning every
/// recently freed inode (perf, issue 11: 175 µs of CPU a write alone, 13.6 µs now). The first write of
/// a claim renames instead: jobs/ID.json is then the transition's own file (also durable/ID.json),
/// which must never become the spare and be rewritten.
///
/// The spare is cut to its first byte (`{` in every state) before the write, not to nothing: cut to
/// nothing, ext4 frees its block and writes the file out at close (`auto_da_alloc`), every time.
/// Either way the old state's bytes are gone before the new ones arrive, so a reader that opened the
/// file before it became the spare reads all of the old state, or a part of the new one that does not
/// decode (`status` then reads the path again), never a mix that does.
struct ProgressFiles {
    private let store: DirectoryStore
    private let id: JobID
    /// The file named runner-tmp/ID.progress, once written.
    private var spare: FileDescriptor?
    /// The file named jobs/ID.json once this claim wrote progress (before, that is the transition's file).
    private var shown: FileDescriptor?

    init(store: DirectoryStore, id: JobID) {
        self.store = store
        self.id = id
    }

    /// Shows `job` as jobs/ID.json.
    mutating func write(_ job: Job) throws(StoreError) {
        do throws(SystemError) {
            let file: FileDescriptor
            if let spare { file = spare } else {
                file = try FileDescriptor.open(store.progressPath(id), O_WRONLY | O_CREAT, mode: 0o664)
                spare = file
            }
            try file.truncate(to: 1)
            try file.writeAll(DirectoryStore.encode(job), at: 0)
            if let shown {
                try FileSystem.exchange(store.progressPath(id), store.statusPath(id))
                spare = shown
            } else {
                try FileSystem.rename(store.progressPath(id), store.statusPath(id))
                spare = nil
            }
            shown = file
        } catch {
            throw .unavailable(error.description)
        }
    }

    /// Closes both files (the next transition removes the spare).
    mutating func close() {
        spare?.close()
        shown?.close()
        spare = nil
        shown = nil
    }
}
