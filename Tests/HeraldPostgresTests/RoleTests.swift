import Foundation
import HeraldCore
import HeraldPostgres
@testable import HeraldPostgresStore
import HeraldPostgresTesting
import HeraldStore
import Testing

/// The web role may read, submit and request cancellation; job state is the runner role's alone.
@Suite struct RoleTests {
    /// A database migrated with `--web-role` and a connection as that role (a role of its own per test).
    private func webFixture() throws -> (PostgresFixture, web: PostgresConnection, webInfo: String) {
        let cluster = try PrivateCluster.require()
        let role = "web_\(UInt32.random(in: 0...UInt32.max))"
        try cluster.sql("CREATE ROLE \(role) LOGIN")
        let fixture = try PostgresFixture(webRole: role)
        let webInfo = fixture.conninfo.replacingUser(with: role)
        return (fixture, try PostgresConnection.connect(webInfo), webInfo)
    }

    @Test func theWebRoleCannotWriteJobStateOrLogs() throws {
        let (fixture, web, _) = try webFixture()
        let runner = try fixture.store()
        let job = try fixture.submit(runner)
        let writes = [
            "UPDATE herald.jobs SET state = 'succeeded'",
            "UPDATE herald.jobs SET cancel_requested = true",
            "DELETE FROM herald.jobs",
            "INSERT INTO herald.jobs (id, kind, state, seq, job) VALUES ('x', 'k', 'queued', 1, '{}')",
            "INSERT INTO herald.job_logs (job_id, start, data) VALUES ('\(job.id)', 0, 'x')",
            "DELETE FROM herald.idempotency_keys",
            "UPDATE herald.schema_version SET version = 5",
            "SELECT nextval('herald.claims')",
        ]
        for sql in writes {
            #expect("\(sql)", performing: { try web.execute(sql) }, throws: { ($0 as? PostgresError)?.isPermissionDenied == true })
        }
        #expect(try runner.job(job.id) == job)
    }

    @Test func theWebRoleSubmitsRequestsCancellationAndReads() throws {
        let (fixture, _, webInfo) = try webFixture()
        let web = try PostgresStore(conninfo: webInfo, applicationName: "herald-fcgi")
        let job = fixture.newJob(owner: "user-1")
        try web.submit(job)
        #expect(try web.job(job.id) == job)
        #expect(try web.jobs(JobFilter(owner: "user-1")) == [job])
        try web.requestCancel(job.id)
        let runner = try fixture.store()
        #expect(try runner.cancelRequestedQueuedJobs(now: fixture.now()).map(\.id) == [job.id])
        #expect(try web.job(job.id)?.state == .canceled)
        let record = IdempotencyRecord(keyHash: String(repeating: "a", count: 64), bodyHash: String(repeating: "b", count: 64))
        let second = fixture.newJob()
        #expect(try web.submit(second, idempotency: record) == .created(second))
        #expect(try web.submit(fixture.newJob(), idempotency: record) == .repeated(second))
    }

    @Test func theSubmitFunctionTakesOnlyFreshJobs() throws {
        let (fixture, web, _) = try webFixture()
        var running = fixture.newJob()
        running.state = .running
        var laterSeq = fixture.newJob()
        laterSeq.seq = 7
        var badID = fixture.newJob().json(urlPrefix: nil).text
        badID = badID.replacingFirst(of: "\"id\":\"", with: "\"id\":\"../")
        for text in [running.storedText, laterSeq.storedText, badID] {
            #expect("\(text)", performing: { try web.execute("SELECT herald.submit($1::json)", [.text(text)]) },
                    throws: { ($0 as? PostgresError)?.sqlState == "23514" })
        }
        #expect(try fixture.connect().execute("SELECT count(*) FROM herald.jobs").int(0, 0) == 0)
    }
}

extension String {
    func replacingUser(with user: String) -> String {
        split(separator: " ").map { $0.hasPrefix("user=") ? "user=\(user)" : String($0) }.joined(separator: " ")
    }

    func replacingFirst(of target: String, with replacement: String) -> String {
        guard let range = range(of: target) else { return self }
        return self[..<range.lowerBound] + replacement + self[range.upperBound...]
    }
}
