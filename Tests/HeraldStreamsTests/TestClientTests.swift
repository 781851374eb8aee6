import Foundation
import Glibc
import HeraldCore
import HeraldPOSIX
import HeraldStreams
import Testing

/// The fixture's own promise: what a client sees is what the hub did, whatever else the test process runs.
@Suite struct TestClientTests {
    /// Tests run in parallel in one process, and some spawn children that keep every descriptor not
    /// close-on-exec (system(3) starting the PostgreSQL test cluster, whose server lives until the process
    /// exits): one holding the hub's end of a client's socket keeps the client from ever seeing the hub close it.
    @Test func aStreamEndReachesItsClientWhileAChildSpawnedMeanwhileRuns() throws {
        let store = SlowStore()
        let hub = try StreamHub(store: store, urlPrefix: "/jobs", heartbeat: .seconds(60), log: { _ in })
        let client = TestClient(hub: hub, target: .dashboard, authorizedUntil: Clock.wallMilliseconds())
        // A child that keeps whatever it inherits, as system(3) spawns one.
        var pid = pid_t()
        let args: [String] = ["/bin/sleep", "30"]
        let argv = args.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        try #require(posix_spawn(&pid, "/bin/sleep", nil, nil, argv, environ) == 0)
        defer {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
        hub.start()
        #expect(client.read(within: 5) { $0.ended }, "the hub ended the stream (its token lapsed at once)")
    }
}
