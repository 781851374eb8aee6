import Foundation
import HeraldCore
import HeraldPostgres
@testable import HeraldPostgresStore
import HeraldPostgresTesting
import HeraldStore
import Synchronization
import Testing

/// Progress writes of many claims at once go to PostgreSQL together, each still fenced by its own claim.
@Suite struct ProgressBatchTests {
    @Test func writesFromManyClaimsAtOnceLandTogetherAndATakenOverOneIsRefusedAlone() throws {
        let fixture = try PostgresFixture()
        let store = try fixture.store()
        let claims = try (0..<40).map { _ -> any JobClaim in
            _ = try fixture.submit(store)
            return try #require(try store.claimNext(kinds: testKinds, now: fixture.now()))
        }
        let listener = try fixture.connect()
        try listener.execute("LISTEN herald_jobs")
        let taken = claims[7].job.id
        try fixture.connect().execute("UPDATE herald.jobs SET claim = nextval('herald.claims') WHERE id = $1", [.text(taken.text)])
        let refused = Mutex<[JobID]>([])
        let rounds = 20
        let now = fixture.now()
        // A thread per claim, as the runner has one per attempt.
        let done = DispatchGroup()
        for k in claims.indices {
            done.enter()
            Thread {
                defer { done.leave() }
                var job = claims[k].job
                for step in 1...rounds {
                    job = job.applying(.report(ProgressReport(progress: Double(step))), at: now, retries: 1)!
                    do { try claims[k].writeProgress(job) } catch {
                        #expect(error as? StoreError == .claimLost(claims[k].job.id))
                        refused.withLock { $0.append(claims[k].job.id) }
                        return
                    }
                }
            }.start()
        }
        done.wait()
        #expect(refused.withLock { $0 } == [taken])
        for claim in claims where claim.job.id != taken {
            #expect(try store.job(claim.job.id)?.progress == Double(rounds))
        }
        #expect(try store.job(taken)?.progress == claims[7].job.progress)
        // Every write is announced, with fewer notifications than writes: a batch names its ids in one.
        try listener.execute("SELECT 1")
        let notices = listener.notifications().compactMap { ChangeNotice.parse($0.payload) }
        let announced = notices.flatMap(\.1)
        #expect(Set(announced) == Set(claims.map(\.job.id)).subtracting([taken]))
        #expect(announced.count == (claims.count - 1) * rounds)
        #expect(notices.count < announced.count)
    }
}
