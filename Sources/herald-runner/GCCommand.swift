import ArgumentParser
import HeraldCore
import HeraldPOSIX
import HeraldStore

/// `herald-runner gc`: for the herald-gc timer.
struct GCCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "gc", abstract: "Remove ended jobs older than the retention, and idempotency keys older than 24 h.")

    @OptionGroup var options: ConfigOption

    /// Jobs removed per store call.
    static let batchSize = 500

    @Option(help: "Remove jobs that ended longer ago than this (default: the configuration's retention), e.g. 7d.")
    var olderThan: String?

    @Flag(help: "Only print what would be removed.")
    var dryRun = false

    func validate() throws {
        if let olderThan, HeraldDuration(parsing: olderThan) == nil {
            throw ValidationError("--older-than: '\(olderThan)' is not a duration (500ms, 15s, 30m, 2h, 7d)")
        }
    }

    func run() throws {
        let (config, choice) = try options.openStore()
        let store = choice.store
        let age = olderThan.flatMap { HeraldDuration(parsing: $0) } ?? config.retention
        let cutoff = Timestamp(milliseconds: Clock.wallMilliseconds() - age.milliseconds)
        do {
            // Small batches: no long transaction on a busy table (PostgreSQL), no long hold of anything.
            var batch: [Job]
            repeat {
                batch = try store.removeFinishedJobs(before: cutoff, limit: GCCommand.batchSize, dryRun: dryRun)
                for job in batch {
                    print("\(dryRun ? "would remove" : "removed") \(job.id) (\(job.kind), \(job.state.rawValue) \(job.finishedAt?.rfc3339 ?? ""))")
                }
            } while !dryRun && batch.count == GCCommand.batchSize
            // Idempotency keys live 24 h (SPEC §9), whatever the job retention.
            let keyCutoff = Timestamp(milliseconds: Clock.wallMilliseconds() - IdempotencyRecord.lifetime.milliseconds)
            let keys = try store.expireIdempotencyRecords(before: keyCutoff, dryRun: dryRun)
            if keys > 0 { print("\(dryRun ? "would remove" : "removed") \(keys) idempotency keys older than 24h") }
        } catch {
            throw Exit.failure(error)
        }
    }
}
