import ArgumentParser

/// `herald-runner`: runs Herald's jobs and administers the store.
@main
struct HeraldRunnerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "herald-runner",
        abstract: "Run Herald jobs and manage the store.",
        discussion: "Exit codes: 0 fine, 1 job failed (submit --wait), 2 job canceled (submit --wait), 64 usage, 65 bad input, 69 store unavailable, 78 bad configuration.",
        subcommands: [RunCommand.self, WorkCommand.self, SubmitCommand.self, StatusCommand.self, ListCommand.self,
                      CancelCommand.self, LogsCommand.self, GCCommand.self, TokenCommand.self, CheckConfigCommand.self, MigrateCommand.self]
    )
}
