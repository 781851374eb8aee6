import ArgumentParser
import Glibc
import HeraldCore
import HeraldPOSIX
import HeraldRunner
import HeraldStore
import HeraldStores
import HeraldTokens

/// `herald-runner submit KIND -p NAME=VALUE...`: what the API's POST /jobs does, from a shell.
struct SubmitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit", abstract: "Submit a job and print its ID.",
        discussion: "With --wait: exit 0 if the job succeeded, 1 if it failed, 2 if it was canceled.")

    @OptionGroup var options: ConfigOption

    @Argument(help: "The job kind, as configured under `kinds`.")
    var kind: String

    @Option(name: [.customShort("p"), .customLong("param")], help: "A param, NAME=VALUE (repeatable).")
    var params: [String] = []

    @Option(help: "The job's owner (1-128 of A-Z a-z 0-9 . _ : @ -): read tokens for this owner cover it.")
    var owner: String?

    @Option(help: "Submit at most once with this key (1-255 visible ASCII) within 24 h: a repeat prints the first job.")
    var idempotencyKey: String?

    @Flag(help: "Wait for the job to end, showing its progress.")
    var wait = false

    @Flag(help: "Print the job as JSON instead of its ID (with --wait: the final job).")
    var json = false

    func validate() throws {
        for param in params where !param.contains("=") || param.hasPrefix("=") {
            throw ValidationError("-p takes NAME=VALUE, not '\(param)'")
        }
        if let key = idempotencyKey, !(1...255).contains(key.utf8.count) || !key.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) {
            throw ValidationError("--idempotency-key must be 1-255 visible ASCII characters")
        }
        if let owner, !JobOwner.isValid(owner) {
            throw ValidationError("--owner must be 1-\(JobOwner.maxLength) characters from A-Z a-z 0-9 . _ : @ -, not '\(owner.prefix(140))'")
        }
    }

    func run() throws {
        let (config, choice) = try options.openStore()
        let store = choice.store
        guard let kindConfig = config.kinds[exactly: kind] else { throw Exit.failure(.badInput, "no job kind named '\(kind)'") }
        var members: [(String, JSON)] = []
        for param in params {
            let parts = param.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            members.append((String(parts[0]), .string(String(parts[1]))))
        }
        let accepted: [String: String]
        do { accepted = try kindConfig.validate(params: .object(members)) } catch {
            throw Exit.failure(.badInput, "\(error)")
        }
        let newID = JobID(milliseconds: UInt64(Clock.wallMilliseconds()), random: RandomSource.bytes(10))
        var job = Job(id: newID, kind: kind, params: accepted, owner: owner, now: Timestamp(milliseconds: Clock.wallMilliseconds()))
        guard choice.admits(job) else {
            throw Exit.failure(.badInput, "the params are too large: runners read no submission over \(choice.maxSubmissionBytes ?? 0) bytes (4 × max_body_bytes + 64 KiB)")
        }
        do {
            if let idempotencyKey {
                // The CLI is its own scope; the body is what POST /jobs would carry.
                let body = JSON.object([("kind", .string(kind)), ("params", .object(members)), ("owner", .optional(owner))])
                let record = IdempotencyRecord(keyHash: Crypto.sha256Hex(Array("cli\n\(idempotencyKey)".utf8)),
                                               bodyHash: Crypto.sha256Hex(Array(body.canonical.text.utf8)))
                switch try store.submit(job, idempotency: record) {
                case let .created(created), let .repeated(created): job = created
                case .keyReused: throw Exit.failure(.badInput, "--idempotency-key \(idempotencyKey) was used with another job within 24 hours")
                }
            } else {
                try store.submit(job)
            }
        } catch let error as StoreError { throw Exit.failure(error) }
        let id = job.id
        guard wait else {
            StandardOutput.write((json ? job.json(urlPrefix: config.urlPrefix).text : id.text) + "\n")
            return
        }
        if !json { StandardOutput.write(id.text + "\n") }
        let final = try follow(id, store: store)
        if json { StandardOutput.write(final.json(urlPrefix: config.urlPrefix).text + "\n") }
        switch final.state {
        case .succeeded: return
        case .canceled: throw ExitCode(Exit.jobCanceled.rawValue)
        default: throw ExitCode(Exit.jobFailed.rawValue)
        }
    }

    /// Shows the job's progress until it ends: a bar redrawn in place on a terminal, else a line per change.
    private func follow(_ id: JobID, store: any JobStore) throws -> Job {
        let terminal = isatty(1) == 1
        var shown = ""
        do {
            let waiter = try ChangeWaiter(store: store)
            while true {
                let job = try Exit.job(id, in: store)
                if !json {
                    let text = terminal ? JobText.bar(job) : JobText.progressLine(job)
                    if text != shown {
                        StandardOutput.write(terminal ? "\r\u{1B}[K\(text)" : text + "\n")
                        shown = text
                    }
                }
                if job.state.isTerminal {
                    if terminal && !json { StandardOutput.write("\n\(JobText.progressLine(job))\n") }
                    return job
                }
                _ = try waiter.wait(timeoutMilliseconds: 1000)
            }
        } catch let error as StoreError {
            throw Exit.failure(error)
        }
    }
}
