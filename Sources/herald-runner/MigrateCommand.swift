import ArgumentParser
import HeraldPostgresStore

/// `herald-runner migrate`: creates or upgrades the PostgreSQL schema (SPEC §8).
struct MigrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Create or upgrade the PostgreSQL schema, and grant the web role what herald-fcgi needs.",
        discussion: """
            Run it as the runner's database role: that role owns the schema and alone writes job state. \
            Safe to run again, and from several hosts at once. Exit 69 when the database cannot be reached, \
            78 for a bad configuration, an unknown --web-role or a schema newer than this herald-runner.
            """)

    @OptionGroup var options: ConfigOption

    @Option(help: "The role herald-fcgi connects as: granted SELECT on jobs and logs and EXECUTE on submit and cancel, nothing else.")
    var webRole: String?

    func run() throws {
        let config = try options.load()
        guard let url = config.databaseURL else {
            throw Exit.failure(.badConfig, "migrate needs database_url (or HERALD_DATABASE_URL): the state directory has no schema")
        }
        do {
            let report = try Schema.migrate(conninfo: url, webRole: webRole, applicationName: "herald-runner")
            print(report.from == report.to ? "schema already at version \(report.to)" : "schema migrated from version \(report.from) to \(report.to)")
            if let webRole { print("granted \(webRole): read jobs and logs, submit, request cancellation") }
        } catch {
            throw Exit.failure(error.isUnavailable ? .unavailable : .badConfig, "\(error)")
        }
    }
}
