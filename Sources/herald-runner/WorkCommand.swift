import ArgumentParser

/// `herald-runner work`: the systemd service.
struct WorkCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "work", abstract: "Wait for jobs and run them until SIGTERM.")

    @OptionGroup var runner: RunnerArguments

    @Option(help: "Jobs to run at once (default: the configuration's workers).")
    var workers: Int?

    func validate() throws {
        if let workers, !(1...1024).contains(workers) { throw ValidationError("--workers must be from 1 to 1024") }
    }

    func run() throws { try runner.start(.daemon, workers: workers) }
}
