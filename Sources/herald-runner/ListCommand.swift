import ArgumentParser
import HeraldCore
import HeraldRunner
import HeraldStore

/// `herald-runner list`.
struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List jobs, newest first.")

    @OptionGroup var options: ConfigOption

    @Option(help: "Only jobs in this state: queued, running, succeeded, failed or canceled.")
    var state: String?

    @Option(help: "Only jobs of this kind.")
    var kind: String?

    @Flag(help: "Print a JSON array of jobs.")
    var json = false

    func validate() throws {
        if let state, JobState(rawValue: state) == nil {
            throw ValidationError("--state must be one of \(JobState.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    func run() throws {
        let (config, choice) = try options.openStore()
        let store = choice.store
        let jobs: [Job]
        do { jobs = try store.jobs(JobFilter(state: state.flatMap(JobState.init(rawValue:)), kind: kind, limit: .max)) } catch {
            throw Exit.failure(error)
        }
        if json {
            print(JSON.array(jobs.map { $0.json(urlPrefix: config.urlPrefix) }).text)
        } else {
            jobs.forEach { print(JobText.row($0)) }
        }
    }
}
