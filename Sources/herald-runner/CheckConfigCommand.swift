import ArgumentParser
import HeraldStore

/// `herald-runner check-config`: for ExecStartPre= and before a reload.
struct CheckConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "check-config", abstract: "Check the configuration: exit 0 if good, 78 if not.")

    @OptionGroup var options: ConfigOption

    func run() throws {
        _ = try options.load()
        print("OK \(ConfigFile.path(explicit: options.config))")
    }
}
