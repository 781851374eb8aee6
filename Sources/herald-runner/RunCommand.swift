import ArgumentParser

/// `herald-runner run`: for cron and systemd .path/.timer units.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run queued jobs until the queue is drained, then exit 0.")

    @OptionGroup var runner: RunnerArguments

    func run() throws { try runner.start(.drain, workers: nil) }
}
