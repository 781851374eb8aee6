import Foundation
import Testing
import HeraldCore
import HeraldPOSIX
@testable import HeraldStore

/// A store on a fresh temporary directory, removed when the fixture goes.
final class StoreFixture {
    let root: String
    let store: DirectoryStore
    private var clock: Int64 = 1_764_000_000_000

    /// A fixture whose store fsyncs through `sync` (a recorder, for tests of what is made durable).
    init(sync: StoreSync = .system) throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("herald-store-\(UUID().uuidString)").path
        store = try DirectoryStore(root: root, create: true, maxBodyBytes: Config().maxBodyBytes, sync: sync)
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    /// A later time at every call, so IDs and timestamps sort in creation order.
    func now() -> Timestamp {
        clock += 1
        return Timestamp(milliseconds: clock)
    }

    /// Submits a job of `kind` and returns it.
    @discardableResult
    func submit(_ kind: String = "report", params: [String: String] = [:]) throws -> Job {
        let time = now()
        let job = Job(id: JobID(milliseconds: UInt64(time.milliseconds), random: RandomSource.bytes(10)), kind: kind, params: params, now: time)
        try store.submit(job)
        return job
    }

    /// Gives the directory the two-user layout an operator made by the deployment guide before this
    /// review: group `nogroup` (so `nobody` plays herald-web), setgid, tmp/ new/ cancel/ 2770, the rest 2750.
    func deployForTwoUsers() throws {
        try shell("""
            chgrp -R nogroup '\(root)' && chmod 2750 '\(root)' && cd '\(root)' && \
            chmod 2770 tmp new cancel && chmod 2750 jobs logs queue running slots
            """)
    }

    /// Runs `/bin/sh -c script` as the web user (`nobody`, group `nogroup` only); its exit status and output.
    @discardableResult
    func asWebUser(_ script: String) throws -> (status: Int32, output: String) {
        try shell(script, prefix: ["/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"], check: false)
    }

    @discardableResult
    private func shell(_ script: String, prefix: [String] = [], check: Bool = true) throws -> (status: Int32, output: String) {
        let process = Process()
        let argv = prefix + ["/bin/sh", "-c", script]
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        if check && process.terminationStatus != 0 {
            throw StoreFixtureError("\(argv) exited \(process.terminationStatus): \(output)")
        }
        return (process.terminationStatus, output)
    }

    static func kinds(concurrency: Int? = nil, retries: Int = 0) -> [String: KindConfig] {
        ["report": KindConfig(name: "report", executor: .command(["/bin/true"]), concurrency: concurrency, retries: retries)]
    }
}

/// A fixture step that did not work.
struct StoreFixtureError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension JobClaim {
    /// Ends the claim with its job succeeded, for tests about claiming rather than ending.
    func succeed(at time: Timestamp) throws {
        try finish(try #require(job.applying(.exited(status: 0), at: time, retries: 0)))
    }
}
