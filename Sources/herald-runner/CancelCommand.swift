import ArgumentParser

/// `herald-runner cancel ID`: asks the runner to cancel; the runner does it within a moment.
struct CancelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cancel", abstract: "Ask for a job to be canceled.")

    @OptionGroup var options: ConfigOption

    @Argument(help: "The job's ID.")
    var id: String

    func run() throws {
        let jobID = try Exit.jobID(id)
        let store = try options.openStore().1.store
        let job = try Exit.job(jobID, in: store)
        guard !job.state.isTerminal else { throw Exit.failure(.badInput, "job \(jobID) already ended (\(job.state.rawValue))") }
        do { try store.requestCancel(jobID) } catch { throw Exit.failure(error) }
        print("cancel requested for \(jobID) (\(job.state.rawValue))")
    }
}
