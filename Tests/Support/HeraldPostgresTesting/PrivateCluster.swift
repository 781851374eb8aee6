// A private PostgreSQL cluster for tests (ENGINEERING.md, "PostgreSQL on these machines").
//
// initdb refuses root, so as root initdb and pg_ctl run as `nobody` (setpriv) in a directory of
// their own under /tmp; the server listens on a unix socket in that directory only (no TCP port
// to collide with anything), with fsync off. Each test process starts one cluster, gives every
// test a database of its own, and stops the cluster at exit by its data directory (pg_ctl). A
// cluster left by a test process that died is stopped by the next one that starts.
import Foundation
import Glibc

/// A PostgreSQL server in a temporary directory, for tests.
public final class PrivateCluster: @unchecked Sendable {
    /// Why there is no cluster: the PostgreSQL server binaries are not installed (`make test` installs them).
    public struct Unavailable: Error, CustomStringConvertible {
        public let description: String
    }

    /// The directory: the unix socket lives here, the data in `data/`, the server log in `log`.
    public let directory: String
    private let binDirectory: String
    private var counter = 0
    private let lock = NSLock()

    /// The cluster of this test process, started at first use and stopped at exit.
    public static let shared: Result<PrivateCluster, Error> = {
        let result = Result { try PrivateCluster() }
        if case .success = result { atexit { if case let .success(cluster) = PrivateCluster.shared { cluster.destroy() } } }
        return result
    }()

    /// The shared cluster, or `Unavailable` naming what is missing.
    public static func require() throws -> PrivateCluster { try shared.get() }

    /// The directory holding initdb and pg_ctl, if PostgreSQL is installed.
    public static func serverBinaries() -> String? {
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        for version in versions.sorted(by: { (Int($0) ?? 0) > (Int($1) ?? 0) }) {
            let bin = "/usr/lib/postgresql/\(version)/bin"
            if FileManager.default.isExecutableFile(atPath: bin + "/initdb") { return bin }
        }
        return nil
    }

    /// Makes and starts a cluster in a fresh directory.
    public init() throws {
        guard let bin = PrivateCluster.serverBinaries() else {
            throw Unavailable(description: "PostgreSQL server binaries not found under /usr/lib/postgresql (apt-get install postgresql)")
        }
        binDirectory = bin
        PrivateCluster.stopAbandoned()
        var template = Array("/tmp/herald-pg-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw Unavailable(description: "mkdtemp: \(String(cString: strerror(errno)))") }
        directory = String(cString: made)
        try String(getpid()).write(toFile: directory + "/owner-pid", atomically: true, encoding: .utf8)
        if getuid() == 0 { try run(["/bin/chown", "nobody:nogroup", directory]) }
        try runAsServer([bin + "/initdb", "-D", directory + "/data", "-A", "trust", "-U", "herald", "--no-sync", "-E", "UTF8", "--locale=C"])
        try start()
    }

    /// Starts the server (again, after `stopServer`).
    public func start() throws {
        try runAsServer([binDirectory + "/pg_ctl", "-D", directory + "/data", "-l", directory + "/log", "-w", "-o",
                         "-k \(directory) -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
                         "start"])
    }

    /// Stops the server, as an outage would (`-m fast`: sessions are ended).
    public func stopServer() throws {
        try runAsServer([binDirectory + "/pg_ctl", "-D", directory + "/data", "-m", "fast", "-w", "stop"])
    }

    /// Restarts the server (`pg_ctl restart -m fast`).
    public func restart() throws {
        try runAsServer([binDirectory + "/pg_ctl", "-D", directory + "/data", "-m", "fast", "-w", "restart"])
    }

    /// Stops the server and removes the directory.
    public func destroy() {
        _ = try? runAsServer([binDirectory + "/pg_ctl", "-D", directory + "/data", "-m", "immediate", "-w", "stop"])
        _ = system("rm -rf " + shellQuoted(directory))
    }

    /// The conninfo of `database` as the superuser `herald` (or `user`).
    public func conninfo(database: String, user: String = "herald") -> String {
        "host=\(directory) dbname=\(database) user=\(user)"
    }

    /// A new, empty database; its conninfo.
    public func createDatabase() throws -> String {
        let name: String = lock.withLock {
            counter += 1
            return "t\(getpid())_\(counter)"
        }
        try sql("CREATE DATABASE \(name)")
        return conninfo(database: name)
    }

    /// Runs `statements` with psql as the superuser, in `database`.
    public func sql(_ statements: String, database: String = "postgres") throws {
        try run([binDirectory + "/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", directory, "-U", "herald", "-d", database, "-c", statements])
    }

    private func runAsServer(_ argv: [String]) throws {
        try run(getuid() == 0 ? ["/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] + argv : argv)
    }

    /// Runs `argv` and waits for it; throws with its output when it fails. system(3), not Foundation's
    /// Process, whose wait hangs now and then here, and for ever when called from atexit. The command
    /// gets no descriptor of the test process but 0, 1 and 2: the server it starts outlives every test,
    /// and a socket of another test's copied into it would keep that test's peer from seeing its end.
    private func run(_ argv: [String]) throws {
        let output = directory.isEmpty ? "/dev/null" : directory + "/command-output"
        let closeInherited = #"for fd in /proc/$$/fd/*; do n=${fd##*/}; [ "$n" -gt 2 ] && eval "exec $n>&-" 2>/dev/null; done; exec "$@""#
        let status = system((["/bin/bash", "-c", closeInherited, "bash"] + argv).map(shellQuoted).joined(separator: " ") + " >" + output + " 2>&1")
        guard status == 0 else {
            let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            throw Unavailable(description: "\(argv.joined(separator: " ")) failed (\(status)): \(text)")
        }
    }

    /// Stops and removes clusters whose test process is gone (it crashed before its atexit ran).
    private static func stopAbandoned() {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []
        for name in entries where name.hasPrefix("herald-pg-") {
            let dir = "/tmp/" + name
            guard let text = try? String(contentsOfFile: dir + "/owner-pid", encoding: .utf8), let pid = Int32(text),
                  kill(pid, 0) != 0, errno == ESRCH else { continue }
            if let pidText = try? String(contentsOfFile: dir + "/data/postmaster.pid", encoding: .utf8),
               let postmaster = pidText.split(separator: "\n").first.flatMap({ Int32($0) }),
               let command = try? String(contentsOfFile: "/proc/\(postmaster)/cmdline", encoding: .utf8), command.contains(dir) {
                kill(postmaster, SIGQUIT)  // immediate shutdown of that cluster's server, by its pid (checked to be it)
            }
            try? FileManager.default.removeItem(atPath: dir)
        }
    }
}

/// `text` quoted for /bin/sh.
private func shellQuoted(_ text: String) -> String {
    "'" + text.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
}
