import CHeraldSys
import Glibc

/// Child processes: spawned directly (never through a shell), each in its own process group.
public enum ChildProcess {
    /// Starts `argv` with `environment`, the given descriptors dup'ed onto 0, 1, 2 and 3,
    /// in a new process group whose id is the child's pid. Returns the pid.
    public static func spawn(argv: [String], environment: [String], stdin: FileDescriptor, stdout: FileDescriptor,
                             stderr: FileDescriptor, fd3: FileDescriptor?) throws(SystemError) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var sources = [stdin, stdout, stderr]
        if let fd3 { sources.append(fd3) }
        for (target, source) in sources.enumerated() {
            // dup2 onto the same number would keep close-on-exec; spawn never gets such fds from us.
            posix_spawn_file_actions_adddup2(&actions, source.rawValue, Int32(target))
        }
        // Descriptors this process inherited without close-on-exec must not reach the child: a pipe
        // held open by a job would keep its parent's reader waiting for end of file.
        herald_spawn_closefrom(&actions, Int32(sources.count))
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attributes, 0)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigfillset(&defaults)
        posix_spawnattr_setsigdefault(&attributes, &defaults)

        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = environment.map { strdup($0) } + [nil]
        defer { (cArgs + cEnv).forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, &attributes, cArgs, cEnv)
        guard rc == 0 else { throw SystemError("posix_spawn", errno: rc, path: argv[0]) }
        return pid
    }

    /// Sends `signal` to every process in the group `group`; false if the group is gone.
    @discardableResult
    public static func signalGroup(_ group: pid_t, _ signal: Int32) -> Bool { Glibc.kill(-group, signal) == 0 }

    /// Sends `signal` to one process; false if it is gone.
    @discardableResult
    public static func signal(_ pid: pid_t, _ signal: Int32) -> Bool { Glibc.kill(pid, signal) == 0 }

    /// The process group `pid` is in, or nil when it is gone.
    public static func group(of pid: pid_t) -> pid_t? {
        let group = getpgid(pid)
        return group < 0 ? nil : group
    }

    /// Whether the process group `group` still has members.
    public static func groupExists(_ group: pid_t) -> Bool { Glibc.kill(-group, 0) == 0 || errno == EPERM }

    /// Makes this process the reaper of its orphaned descendants, so a job's leftover
    /// children (also those that left its process group) are handed to it, not to PID 1.
    public static func becomeSubreaper() throws(SystemError) {
        try retryingEINTR("prctl(PR_SET_CHILD_SUBREAPER)") { herald_set_child_subreaper() }
    }

    /// Reaps one ended child without blocking: its pid and exit status (128+signal when killed), or nil when none has ended.
    public static func reapAny() -> (pid: pid_t, status: Int)? {
        var status: Int32 = 0
        while true {
            let pid = waitpid(-1, &status, WNOHANG)
            if pid < 0, errno == EINTR { continue }
            guard pid > 0 else { return nil }  // 0: none ended; ECHILD: no children
            let low = status & 0x7F
            return (pid, low == 0 ? Int((status >> 8) & 0xFF) : 128 + Int(low))
        }
    }

    /// This process's children (zombies included), from every thread's /proc/self/task/TID/children.
    public static func children() -> [pid_t] {
        let threads = (try? FileSystem.list("/proc/self/task")) ?? []
        return threads.flatMap { thread -> [pid_t] in
            let text = (try? FileSystem.read("/proc/self/task/\(thread)/children")) ?? []
            return text.split(separator: UInt8(ascii: " ")).compactMap { pid_t(String(decoding: $0, as: UTF8.self)) }
        }
    }

    /// The environment `pid` was started with (/proc/PID/environ), or nil when it cannot be read (gone, a zombie, another user's).
    public static func environment(of pid: pid_t) -> [String]? {
        guard let bytes = try? FileSystem.read("/proc/\(pid)/environ"), !bytes.isEmpty else { return nil }
        return bytes.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }
}

/// The calling thread.
public enum ThisThread {
    /// Lowers its CPU priority to `nice` (0-19), leaving the process's other threads theirs.
    public static func lowerPriority(nice: Int32) throws(SystemError) {
        try retryingEINTR("setpriority(thread)") { herald_nice_this_thread(nice) }
    }
}

/// Process-wide signal set-up.
public enum Signals {
    /// Blocks `signals` in the calling thread (call before starting threads so all inherit it).
    public static func block(_ signals: [Int32]) {
        var set = sigset_t()
        sigemptyset(&set)
        for s in signals { sigaddset(&set, s) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Waits for one of `signals` (which must be blocked in every thread) and returns it.
    public static func wait(_ signals: [Int32]) -> Int32 {
        var set = sigset_t()
        sigemptyset(&set)
        for s in signals { sigaddset(&set, s) }
        var received: Int32 = 0
        while sigwait(&set, &received) != 0 {}
        return received
    }

    /// Ignores SIGPIPE, so writes to a closed pipe or socket return EPIPE instead of killing the process.
    public static func ignorePipe() { signal(SIGPIPE, SIG_IGN) }
}
