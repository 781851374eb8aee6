import Glibc
import HeraldCore
import HeraldPOSIX

/// A command kind's attempt: the program executed directly in its own process group, params on
/// stdin and in the environment, stdout+stderr into the log, progress lines on fd 3.
struct CommandProgram {
    let argv: [String]
    let attempt: Attempt

    private static let outputToken: UInt64 = 1
    private static let progressToken: UInt64 = 2
    private static let progressEvents = Epoll.readable | Epoll.oneShot

    func run() -> JobEvent {
        let job = attempt.job
        var childEnds: [FileDescriptor] = []
        var parentEnds: [FileDescriptor] = []
        defer { (childEnds + parentEnds).forEach { $0.close() } }
        let pid: pid_t
        let epoll: Epoll
        let output, progress: FileDescriptor
        do {
            // A memory file, not a pipe: the params are all there before the program starts, whatever their size.
            let stdin = try FileDescriptor.memoryFile(name: "herald-params")
            childEnds.append(stdin)
            try stdin.writeAll(Array(job.paramsJSON.text.utf8))
            try stdin.seek(to: 0)
            let out = try FileDescriptor.pipe()
            parentEnds.append(out.read)
            childEnds.append(out.write)
            let fd3 = try FileDescriptor.pipe()
            parentEnds.append(fd3.read)
            childEnds.append(fd3.write)
            epoll = try Epoll()
            parentEnds.append(epoll.fd)
            for fd in [out.read, fd3.read] { try fd.setNonBlocking() }
            try epoll.add(out.read, events: Epoll.readable, token: Self.outputToken)
            // One wake-up per report at most, then none until the status may be written again (ProgressReader).
            try epoll.add(fd3.read, events: Self.progressEvents, token: Self.progressToken)
            pid = try attempt.reaper.spawn { () throws(SystemError) in
                try ChildProcess.spawn(argv: argv, environment: CommandProgram.environment(for: job),
                                       stdin: stdin, stdout: out.write, stderr: out.write, fd3: fd3.write)
            }
            output = out.read
            progress = fd3.read
        } catch {
            attempt.log.line("[herald: cannot start \(argv[0]): \(error)]")
            return .aborted(JobError(.spawnFailed, "cannot start \(argv[0]): \(error)"))
        }
        // Only the child may hold the write ends, so the pipes reach end of file when it (and its group) is gone.
        childEnds.forEach { $0.close() }
        childEnds = []
        attempt.recordProcessGroup(pid)
        return supervise(pid: pid, epoll: epoll, output: output, progress: progress)
    }

    /// Exactly the documented variables: nothing else of the runner's environment leaks into jobs.
    static func environment(for job: Job) -> [String] {
        func inherited(_ name: String, _ fallback: String) -> String {
            guard let value = getenv(name), value.pointee != 0 else { return fallback }
            return String(cString: value)
        }
        var env = [
            "PATH=\(inherited("PATH", "/usr/local/bin:/usr/bin:/bin"))",
            "HOME=\(inherited("HOME", "/"))",
            "LANG=\(inherited("LANG", "C.UTF-8"))",
            "HERALD_JOB_ID=\(job.id.text)",
            "HERALD_KIND=\(job.kind)",
            "HERALD_ATTEMPT=\(job.attempt)",
            "HERALD_PROGRESS_FD=3",
        ]
        for (name, value) in job.params.sorted(by: { $0.key < $1.key }) { env.append("HERALD_PARAM_\(name.uppercased())=\(value)") }
        return env
    }

    /// Reads output and progress until the program and every process it left are gone: its group, and
    /// the processes that left the group and were handed to this process (a subreaper) when their parent
    /// ended. Stops all of them on timeout, cancel or shutdown, and when the program ends, since no process
    /// of a job may outlive it (SIGTERM, then SIGKILL after the grace).
    ///
    /// fd 3 is watched for one wake-up at a time (EPOLLONESHOT). A wake-up reads every report there is and
    /// writes the latest state; until the throttle's interval is over, later reports stay in the pipe
    /// (`readProgressAt`), and then all of them are read at once and the latest written. So a job costs one
    /// wake-up, one read and one write per interval however fast its program reports, and the state written
    /// is always the newest, never one of a backlog.
    private func supervise(pid: pid_t, epoll: Epoll, output: FileDescriptor, progress: FileDescriptor) -> JobEvent {
        var lines = LineSplitter()
        var status: Int?
        var stop: StopReason?
        var signals = StopSignals(graceMilliseconds: attempt.options.killGraceMilliseconds)
        var progressOpen = true  // until end of file on fd 3
        var outputOpen = true
        // The reaper's lock and waitpid(-1) cost every job's loop a scan of all children: asked at most
        // every 100 ms while the pipes are open (a program's end closes them, unless it left them to others).
        var checkExitAt: Int64 = 0
        var readProgressAt: Int64?  // nil: armed, woken by the next report
        let reaper = attempt.reaper

        /// Reads and writes what was reported; returns when to read again, nil once fd 3 is armed again.
        func takeReports(now: Int64) -> Int64? {
            progressOpen = drain(progress, token: Self.progressToken, epoll: epoll, lines: &lines)
            attempt.writeStatus(now: now)
            guard progressOpen else { return nil }
            if let later = attempt.nextReportRead(now: now) { return later }  // written: the rest waits in the pipe
            // Nothing new was written: wake at the next report (or look again in an interval, should arming fail).
            do { try epoll.modify(progress, events: Self.progressEvents, token: Self.progressToken) } catch {
                return now + attempt.options.statusIntervalMilliseconds
            }
            return nil
        }

        while true {
            let now = Clock.monotonicMilliseconds()
            if status == nil, now >= checkExitAt || !outputOpen || !progressOpen {
                status = reaper.exitStatus(of: pid)
                checkExitAt = now + 100
            }
            if status == nil, stop == nil, let reason = attempt.stops.check(now: now) {
                stop = reason
                runnerLog(.info, "job \(attempt.job.id) (\(attempt.kind.name)) stopping: \(reason)")
            }
            if status != nil || stop != nil {
                let strays = reaper.signalStrays(of: attempt.job.id, group: pid) { signals.signal(for: .process($0), now: now) }
                let groupLeft = ChildProcess.groupExists(pid)
                if status != nil, !groupLeft, strays == 0 { break }
                if groupLeft, let signal = signals.signal(for: .group(pid), now: now) { ChildProcess.signalGroup(pid, signal) }
            }
            if progressOpen, let at = readProgressAt, now >= at { readProgressAt = takeReports(now: now) }
            attempt.writeStatus(now: now)
            let checkAgain = status == nil && stop == nil ? min(attempt.stops.nextCheck ?? .max, checkExitAt) : nil
            let killAt = signals.killAt.flatMap { $0 > now ? $0 : nil }
            let wait = attempt.waitMilliseconds(now: now, deadlines: [checkAgain, killAt, progressOpen ? readProgressAt : nil])
            for (token, _) in epoll.wait(timeoutMilliseconds: wait, max: 2) {
                if token == Self.outputToken {
                    outputOpen = drain(output, token: token, epoll: epoll, lines: &lines)
                } else if progressOpen {
                    readProgressAt = takeReports(now: Clock.monotonicMilliseconds())
                }
            }
        }
        // What the group wrote just before it ended is still in the pipes.
        _ = drain(output, token: Self.outputToken, epoll: epoll, lines: &lines)
        _ = drain(progress, token: Self.progressToken, epoll: epoll, lines: &lines)
        if let last = lines.finish(), let report = ProgressReport(line: last) { attempt.report(report) }
        if let stop { return attempt.event(for: stop) }
        return .exited(status: status ?? -1)
    }

    /// Reads what is there now; returns false at end of file, where the descriptor leaves the epoll set.
    private func drain(_ fd: FileDescriptor, token: UInt64, epoll: Epoll, lines: inout LineSplitter) -> Bool {
        while true {
            let chunk: [UInt8]
            do { chunk = try fd.read(upTo: 65536) } catch {
                guard error.errno == EAGAIN else {
                    epoll.remove(fd)
                    return false
                }
                return true
            }
            if chunk.isEmpty {
                epoll.remove(fd)
                return false
            }
            if token == Self.outputToken {
                attempt.log.append(chunk)
            } else {
                for line in lines.feed(chunk) { if let report = ProgressReport(line: line) { attempt.report(report) } }
            }
        }
    }
}
