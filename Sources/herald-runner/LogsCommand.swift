import ArgumentParser
import HeraldCore
import HeraldPOSIX
import HeraldRunner
import HeraldStore

/// `herald-runner logs ID [--follow]`.
struct LogsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logs", abstract: "Print a job's output.")

    @OptionGroup var options: ConfigOption

    @Argument(help: "The job's ID.")
    var id: String

    @Flag(name: [.short, .long], help: "Keep printing new output until the job ends.")
    var follow = false

    func run() throws {
        let jobID = try Exit.jobID(id)
        let store = try options.openStore().1.store
        var job = try Exit.job(jobID, in: store)
        let out = FileDescriptor(rawValue: 1)
        var offset = 0
        do {
            let waiter = follow ? try ChangeWaiter(store: store) : nil
            while true {
                // The state first: the runner writes the last output before the final state, so
                // output read after seeing an end is complete.
                let ended = job.state.isTerminal
                while true {
                    let chunk = try store.log(jobID, from: offset, maxBytes: 1 << 16)
                    try? out.writeAll(chunk.bytes)
                    offset += chunk.bytes.count
                    if chunk.atEnd || chunk.bytes.isEmpty { break }
                }
                guard let waiter, !ended else { return }
                _ = try waiter.wait(timeoutMilliseconds: 1000)
                job = try Exit.job(jobID, in: store)
            }
        } catch let error as StoreError {
            throw Exit.failure(error)
        }
    }
}
