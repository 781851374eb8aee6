import ArgumentParser
import HeraldCore
import HeraldPOSIX
import HeraldStore

/// The exit codes of SPEC §6 (sysexits.h), and the one way a command fails: a message on stderr, then the code.
enum Exit: Int32 {
    case jobFailed = 1, jobCanceled = 2, usage = 64, badInput = 65, unavailable = 69, badConfig = 78

    /// Prints `herald-runner: message` on stderr and returns the error that exits with `code`.
    static func failure(_ code: Exit, _ message: String) -> ExitCode {
        try? FileDescriptor(rawValue: 2).writeAll(Array("herald-runner: \(message)\n".utf8))
        return ExitCode(code.rawValue)
    }

    /// A store failure: 69 when the store is unavailable, 65 for a corrupt job, 78 for a store only another
    /// configuration helps; a lost claim (a runner's own writes, never a command's) as unavailable.
    static func failure(_ error: StoreError) -> ExitCode {
        switch error {
        case .unavailable, .claimLost: return failure(.unavailable, "\(error)")
        case .corrupt: return failure(.badInput, "\(error)")
        case .unsuitable: return failure(.badConfig, "\(error)")
        }
    }

    /// Parses a job ID from the command line, or exits 65.
    static func jobID(_ text: String) throws -> JobID {
        guard let id = JobID(text) else { throw failure(.badInput, "'\(text)' is not a job ID (26 characters of Crockford base32)") }
        return id
    }

    /// The job with `id`, or exit 65 when there is none.
    static func job(_ id: JobID, in store: any JobStore) throws -> Job {
        let found: Job?
        do { found = try store.job(id) } catch { throw failure(error) }
        guard let found else { throw failure(.badInput, "no job \(id)") }
        return found
    }
}
