import Foundation
import HeraldCore
import HeraldPOSIX
@testable import HeraldRunner
@testable import HeraldStore
import Synchronization
import Testing

extension RunnerBinaryTests {
    /// The scheduler in this process on a `MemoryStore`, with the builtin demo kind (no programs to spawn).
    /// Under the serialized suite: the scheduler reaps any child of the process.
    @Suite struct OnAMemoryStore {
        static let kinds = ["demo": KindConfig(name: "demo", executor: .demo)]

        /// A demo job of `steps` steps 20 ms apart, submitted to `store`.
        static func submitDemo(_ store: MemoryStore, steps: Int) throws -> Job {
            let now = Timestamp(milliseconds: Clock.wallMilliseconds())
            let job = Job(id: JobID(milliseconds: UInt64(now.milliseconds), random: RandomSource.bytes(10)), kind: "demo",
                          params: ["steps": "\(steps)", "interval_ms": "20"], now: now)
            try store.submit(job)
            return job
        }

        /// Runs `herald-runner run`'s loop on another thread; the flag says when it returned.
        static func drain(_ store: MemoryStore) throws -> Finished {
            var options = RunnerOptions(workers: 2)
            options.rescanMilliseconds = 50
            let scheduler = try Scheduler(store: store, kinds: kinds, options: options)
            let handle = Finished()
            Thread {
                try? scheduler.run(.drain)
                handle.flag.store(true, ordering: .releasing)
            }.start()
            return handle
        }

        static func wait(_ seconds: Double = 5, for condition: () throws -> Bool) rethrows -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if try condition() { return true }
                Thread.sleep(forTimeInterval: 0.01)
            }
            return try condition()
        }

        @Test func aCancelRequestReachesTheRunningAttemptThroughTheWatcher() throws {
            let store = MemoryStore()
            let job = try Self.submitDemo(store, steps: 500)
            let done = try Self.drain(store)
            #expect(try Self.wait { try store.job(job.id)?.progress ?? 0 > 0 })
            try store.requestCancel(job.id)
            #expect(try Self.wait(2) { try store.job(job.id)?.state == .canceled })
            #expect(Self.wait { done.flag.load(ordering: .acquiring) })
            #expect(try store.claimNext(kinds: Self.kinds, now: Timestamp(milliseconds: Clock.wallMilliseconds())) == nil)
        }

        @Test func anAttemptWhoseClaimIsTakenOverStopsAndWritesNothingMore() throws {
            let store = MemoryStore()
            let job = try Self.submitDemo(store, steps: 500)
            let done = try Self.drain(store)
            #expect(try Self.wait { try store.job(job.id)?.progress ?? 0 > 0 })
            store.takeOver(job.id)
            let taken = try #require(try store.job(job.id))
            let logSize = try store.log(job.id, from: 0, maxBytes: 1 << 20).bytes.count
            // Stopped like a cancel (before its 10 s of steps), and neither a state nor a log line more.
            #expect(Self.wait(2) { done.flag.load(ordering: .acquiring) })
            #expect(try store.job(job.id) == taken)
            #expect(taken.state == .running)
            #expect(try store.log(job.id, from: 0, maxBytes: 1 << 20).bytes.count == logSize)
        }
    }
}

/// Set by a thread when it returned.
final class Finished: Sendable {
    let flag = Atomic<Bool>(false)
}
