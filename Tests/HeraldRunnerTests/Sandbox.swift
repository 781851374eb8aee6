import Foundation
import Glibc
import HeraldCore
import HeraldStore

/// A temporary Herald installation for one test: a config, a state directory, job scripts, and the
/// `herald-runner` binary built next to this test bundle. Everything it started is killed when it goes.
final class Sandbox {
    let dir: String
    var config: String { dir + "/herald.yml" }
    var stateDir: String { dir + "/state" }
    private var daemons: [Process] = []

    /// The built binary: `HERALD_RUNNER_BIN`, else next to the test bundle (any scratch path).
    static let binary: String = {
        if let path = ProcessInfo.processInfo.environment["HERALD_RUNNER_BIN"] { return path }
        var dir = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
        for _ in 0..<4 {
            dir.deleteLastPathComponent()
            let candidate = dir.appendingPathComponent("herald-runner").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        fatalError("herald-runner not found near \(CommandLine.arguments[0]); set HERALD_RUNNER_BIN")
    }()

    /// A sandbox whose config has `kinds` (YAML, indented under `kinds:`).
    init(kinds: String, workers: Int = 4) throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("herald-runner-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir + "/pids", withIntermediateDirectories: true)
        let yaml = "state_dir: \(stateDir)\nworkers: \(workers)\nkinds:\n" + kinds.replacingOccurrences(of: "$DIR", with: dir)
        try yaml.write(toFile: config, atomically: true, encoding: .utf8)
        _ = try DirectoryStore(root: stateDir, create: true)  // as after the runner's first start
    }

    deinit {
        for process in daemons where process.isRunning { kill(process.processIdentifier, SIGKILL) }
        // Job programs record their process group in pids/: none may outlive a test, whatever happened.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir + "/pids")) ?? [] {
            if let pgid = Int32(name) { kill(-pgid, SIGKILL) }
        }
        for process in daemons { process.waitUntilExit() }
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Writes an executable `/bin/sh` script (a job program, exec'd directly by Herald) and returns its path.
    /// The prologue records the process group for cleanup and the checks.
    @discardableResult
    func script(_ name: String, _ body: String) throws -> String {
        let path = "\(dir)/\(name)"
        let text = "#!/bin/sh\necho $$ > \(dir)/pids/$$\necho $$ > \(dir)/pgid.$HERALD_JOB_ID\nD=\(dir)\n\(body)\n"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    /// Runs `herald-runner ARGS --config CONFIG` to its end.
    @discardableResult
    func cli(_ args: [String], config: String? = nil, timeout: TimeInterval = 30) throws -> (status: Int32, out: String, err: String) {
        let process = try launch(args, config: config, name: "cli")
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        return (process.terminationStatus, read("cli.out"), read("cli.err"))
    }

    /// Starts `herald-runner ARGS --config CONFIG` in the background, with `environment` added; stderr goes to `NAME.err`.
    func start(_ args: [String], name: String, environment: [String: String] = [:]) throws -> Process {
        let process = try launch(args, config: nil, name: name, environment: environment)
        daemons.append(process)
        return process
    }

    private func launch(_ args: [String], config: String?, name: String, environment: [String: String] = [:]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Sandbox.binary)
        process.arguments = args + ["--config", config ?? self.config]
        var env = ProcessInfo.processInfo.environment
        env["HERALD_CONFIG"] = nil
        env["HERALD_WATCH"] = nil
        process.environment = env.merging(environment) { $1 }
        let handles = ["out", "err"].map { suffix -> FileHandle? in
            _ = FileManager.default.createFile(atPath: "\(dir)/\(name).\(suffix)", contents: nil)
            return FileHandle(forWritingAtPath: "\(dir)/\(name).\(suffix)")
        }
        process.standardOutput = handles[0]
        process.standardError = handles[1]
        defer { handles.forEach { try? $0?.close() } }  // the child has its own copies
        try process.run()
        return process
    }

    /// The text of a file in the sandbox ("" when missing).
    func read(_ name: String) -> String { (try? String(contentsOfFile: "\(dir)/\(name)", encoding: .utf8)) ?? "" }

    /// Submits a job with the CLI and returns its ID.
    func submit(_ kind: String, _ params: [String] = []) throws -> JobID {
        let result = try cli(["submit", kind] + params.flatMap { ["-p", $0] })
        guard result.status == 0, let id = JobID(result.out.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw SandboxError("submit failed (\(result.status)): \(result.err)")
        }
        return id
    }

    /// Runs the queue to its end with `herald-runner run`.
    func drain(_ extra: [String] = []) throws {
        let result = try cli(["run"] + extra)
        guard result.status == 0 else { throw SandboxError("run exited \(result.status): \(result.err)") }
    }

    /// The job as its status file says now.
    func job(_ id: JobID) throws -> Job {
        guard let job = try DirectoryStore(root: stateDir, create: false).job(id) else { throw SandboxError("no job \(id)") }
        return job
    }

    /// Waits up to `seconds` for `condition`; true when it came.
    func wait(_ seconds: TimeInterval = 10, for condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try condition() { return true }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return try condition()
    }

    /// Waits for the job to reach `state`.
    func wait(for id: JobID, _ state: JobState, seconds: TimeInterval = 10) throws -> Job {
        _ = wait(seconds) { (try? job(id))?.state == state }
        return try job(id)
    }

    /// The process group the job's program ran in.
    func processGroup(of id: JobID) -> pid_t? { pid_t(read("pgid.\(id)").trimmingCharacters(in: .whitespacesAndNewlines)) }

    /// Whether any live (non-zombie) process is in `group`, read from /proc.
    static func groupHasLiveMembers(_ group: pid_t) -> Bool {
        processes().contains { $0.state != "Z" && $0.group == group }
    }

    /// The zombies whose parent is `parent`: children it has not reaped.
    static func zombies(of parent: pid_t) -> [pid_t] {
        processes().filter { $0.state == "Z" && $0.parent == parent }.map(\.pid)
    }

    /// Whether `pid` is a process (a zombie included), read from /proc.
    static func exists(_ pid: pid_t) -> Bool { FileManager.default.fileExists(atPath: "/proc/\(pid)") }

    /// Every process's state letter, parent and group, from /proc/PID/stat.
    private static func processes() -> [(pid: pid_t, state: Substring, parent: pid_t, group: pid_t)] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry in
            guard let pid = pid_t(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let close = stat.range(of: ")", options: .backwards) else { return nil }
            let fields = stat[close.upperBound...].split(separator: " ")
            guard fields.count > 2, let parent = pid_t(fields[1]), let group = pid_t(fields[2]) else { return nil }
            return (pid, fields[0], parent, group)
        }
    }
}

/// A test set-up step that did not work.
struct SandboxError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
