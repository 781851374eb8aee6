import ArgumentParser
import HeraldCore
import HeraldRunner
import HeraldStore

/// What `run` and `work` share: options, and starting a scheduler on the configured store.
struct RunnerArguments: ParsableArguments {
    @OptionGroup var options: ConfigOption

    // For tests: the contract's waits are long.
    @Option(help: ArgumentHelp("From SIGTERM to SIGKILL of a stopped job (default 10s).", visibility: .hidden))
    var killGrace: String?
    @Option(help: ArgumentHelp("How long running jobs may finish after SIGTERM (default 30s).", visibility: .hidden))
    var shutdownGrace: String?

    func validate() throws {
        for (name, value) in [("--kill-grace", killGrace), ("--shutdown-grace", shutdownGrace)] {
            if let value, HeraldDuration(parsing: value) == nil { throw ValidationError("\(name): '\(value)' is not a duration (500ms, 15s, 30m, 2h, 7d)") }
        }
    }

    /// Runs the scheduler in `mode` until it is done; exits 78 or 69 when it cannot start (a daemon
    /// waits for an unreachable PostgreSQL instead, and exits 78 when it then finds another schema version).
    func start(_ mode: Scheduler.Mode, workers: Int?) throws {
        let (config, choice) = try options.openStore(create: true, waitingForDatabase: mode == .daemon)
        var runnerOptions = RunnerOptions(workers: workers ?? config.workers)
        if let killGrace { runnerOptions.killGraceMilliseconds = HeraldDuration(parsing: killGrace)!.milliseconds }
        if let shutdownGrace { runnerOptions.shutdownGraceMilliseconds = HeraldDuration(parsing: shutdownGrace)!.milliseconds }
        do {
            let scheduler = try Scheduler(store: choice.store, kinds: config.kinds, options: runnerOptions)
            try scheduler.takeSignals()
            runnerLog(.info, "\(mode == .drain ? "run" : "work"): \(choice.description), \(runnerOptions.workers) worker(s), \(config.kinds.count) kind(s)")
            if let warning = choice.warning { runnerLog(.warning, warning) }
            if let why = choice.unreachable { runnerLog(.warning, "\(choice.description) unreachable: waiting until it is back (\(why))") }
            try scheduler.run(mode)
        } catch let error as StoreError {
            throw Exit.failure(error)
        } catch {
            throw Exit.failure(.unavailable, "cannot start: \(error)")
        }
    }
}
