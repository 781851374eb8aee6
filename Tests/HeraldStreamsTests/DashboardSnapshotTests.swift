import HeraldCore
@testable import HeraldStreams
import Testing

@Suite struct DashboardSnapshotTests {
    func entry(_ n: Int, seq: Int) -> DashboardSnapshot.Entry { .init(id: testID(n), seq: seq, event: "\(n)@\(seq)") }

    @Test func theListingNeverTakesBackAStateSentMeanwhile() {
        var snapshot = DashboardSnapshot()
        snapshot.sent(testID(1), seq: 5)  // a change after the registration, sent before the listing came
        snapshot.sent(testID(2), seq: 3)
        let missing = snapshot.missing(from: [entry(1, seq: 4), entry(2, seq: 3), entry(3, seq: 7)])
        // 1: the listing read an older state; 2: the same one; 3: nothing sent of it yet.
        #expect(missing.map(\.event) == ["3@7"])
    }

    @Test func aNewerStateInTheListingIsKept() {
        var snapshot = DashboardSnapshot()
        snapshot.sent(testID(1), seq: 5)
        snapshot.sent(testID(1), seq: 4)  // a late, older notice does not lower what was sent
        #expect(snapshot.missing(from: [entry(1, seq: 6)]).map(\.event) == ["1@6"])
        #expect(snapshot.missing(from: [entry(1, seq: 5)]).isEmpty)
    }
}

@Suite struct ChangedJobsTests {
    @Test func theHubReadsFollowedJobsUpToTheBudgetAndNothingElse() {
        let ids = (0..<10).map(testID)
        let followed = Set(ids[2..<7])
        let reads = ChangedJobs(ids, isFollowed: { followed.contains($0) }, dashboardsOpen: true, budget: 3)
        #expect(reads.now.count == 3 && followed.isSuperset(of: reads.now))
        // The other 2 followed ones, reported whatever they hold; the 5 only dashboards care about.
        #expect(reads.later.count == 7 && reads.later.filter(\.value).count == 2)
        #expect(Set(reads.now).union(reads.later.keys) == Set(ids))
    }

    @Test func withoutDashboardsOnlyFollowedJobsAreRead() {
        let ids = (0..<10).map(testID)
        let followed = Set(ids.prefix(5))
        let reads = ChangedJobs(ids, isFollowed: { followed.contains($0) }, dashboardsOpen: false, budget: 2)
        #expect(reads.now.count == 2)
        #expect(Set(reads.now).union(reads.later.keys) == followed && reads.later.values.allSatisfy { $0 })
    }
}
