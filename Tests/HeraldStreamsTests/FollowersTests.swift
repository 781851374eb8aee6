import HeraldCore
@testable import HeraldStreams
import Testing

@Suite struct FollowersTests {
    final class Stream {}

    @Test func aStreamThatStopsDuringARoundIsListedUntilItsEndAndTheLastOneUnfollowsTheJob() {
        var followers = Followers<Stream>()
        let a = Stream(), b = Stream()
        followers.add(a, token: 1, jobs: [testID(1), testID(2)])
        followers.add(b, token: 2, jobs: [testID(2)])
        // A fan-out over job 2's followers, during which stream 1 closes.
        var seen: [UInt64] = []
        for (token, _) in followers[testID(2)] ?? [:] {
            seen.append(token)
            if seen.count == 1 { followers.remove(token: 1, jobs: [testID(1), testID(2)]) }
        }
        #expect(Set(seen) == [1, 2])
        #expect(followers[testID(1)]?.count == 1, "still listed within the round")
        #expect(followers.endRound() == [testID(1)], "job 2 still has stream 2")
        #expect(followers[testID(1)] == nil)
        #expect(followers[testID(2)].map { Array($0.keys) } == [2])
        #expect(followers.endRound().isEmpty)
        followers.remove(token: 2, jobs: [testID(2)])
        #expect(followers.endRound() == [testID(2)])
        #expect(followers[testID(2)] == nil)
    }
}
