import Glibc
import HeraldCore
import HeraldPOSIX
import Synchronization

/// The one waiter for this process's children. A waitpid for one pid in each attempt would leave the
/// processes that left a job's group (setsid) and were handed to this subreaper as zombies for ever;
/// a blanket waitpid beside them would take the statuses the attempts wait for. So everything is
/// reaped here, under one lock: the programs' statuses are kept for their attempts, the rest dropped.
final class ChildReaper: Sendable {
    private struct Children {
        /// Programs spawned through `spawn` and not yet reaped.
        var running: Set<pid_t> = []
        /// Reaped programs' exit statuses, until their attempt takes them.
        var ended: [pid_t: Int] = [:]
    }

    private let children = Mutex(Children())

    /// Spawns a job program with `start` and registers it before any reaping could see it end.
    func spawn(_ start: () throws(SystemError) -> pid_t) throws(SystemError) -> pid_t {
        try children.withLock { (children) throws(SystemError) -> pid_t in
            let pid = try start()
            children.running.insert(pid)
            return pid
        }
    }

    /// The program's exit status (128+signal when killed) once it has ended, handed out once; nil while it runs.
    func exitStatus(of program: pid_t) -> Int? {
        children.withLock { children in
            Self.reapEnded(&children)
            return children.ended.removeValue(forKey: program)
        }
    }

    /// Reaps every child that has ended.
    func reap() { children.withLock { Self.reapEnded(&$0) } }

    /// Sends `signal(pid)` (nil: none) to each child of this process that left job `id`'s process group
    /// `group`: not a program, but started with the job's `HERALD_JOB_ID`. Returns how many there are.
    /// A process that replaced its environment cannot be told apart: it is reaped when it ends, never signalled.
    func signalStrays(of id: JobID, group: pid_t, _ signal: (pid_t) -> Int32?) -> Int {
        let mark = "HERALD_JOB_ID=\(id.text)"
        return children.withLock { children in
            Self.reapEnded(&children)
            // Under the lock nothing is reaped, so a listed child's pid cannot be reused before it is signalled.
            let strays = ChildProcess.children().filter { pid in
                !children.running.contains(pid) && ChildProcess.group(of: pid) != group
                    && ChildProcess.environment(of: pid)?.contains(mark) == true
            }
            for pid in strays { if let s = signal(pid) { ChildProcess.signal(pid, s) } }
            return strays.count
        }
    }

    private static func reapEnded(_ children: inout Children) {
        while let (pid, status) = ChildProcess.reapAny() {
            if children.running.remove(pid) != nil { children.ended[pid] = status }
        }
    }
}
