import ArgumentParser
import HeraldRunner

/// `herald-runner status ID`.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show a job.")

    @OptionGroup var options: ConfigOption

    @Argument(help: "The job's ID.")
    var id: String

    @Flag(help: "Print the job as JSON, as the API shows it.")
    var json = false

    func run() throws {
        let jobID = try Exit.jobID(id)
        let (config, choice) = try options.openStore()
        let store = choice.store
        let job = try Exit.job(jobID, in: store)
        print(json ? job.json(urlPrefix: config.urlPrefix).text : JobText.details(job))
    }
}
