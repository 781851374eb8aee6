import Foundation
import Glibc
import HeraldCore
import Testing

extension RunnerBinaryTests {
    @Suite struct Stopping {
        /// A program with two children that would run for 1000 s, reporting progress.
        static let stubborn = "sleep 1000 &\nsleep 1000 &\necho 5 started >&3\nwait"

        @Test func aTimeoutStopsTheWholeGroup() throws {
            let box = try Sandbox(kinds: "  slow: {command: [$DIR/slow.sh], timeout: 300ms}\n")
            try box.script("slow.sh", Stopping.stubborn)
            let id = try box.submit("slow")
            let started = Date()
            try box.drain()
            #expect(Date().timeIntervalSince(started) < 5)
            let job = try box.job(id)
            #expect(job.state == .failed)
            #expect(job.error?.code == .timeout)
            let group = try #require(box.processGroup(of: id))
            #expect(!Sandbox.groupHasLiveMembers(group))
            #expect(kill(-group, 0) != 0)
        }

        @Test func aProgramIgnoringSIGTERMGetsSIGKILLAfterTheGrace() throws {
            let box = try Sandbox(kinds: "  deaf: {command: [$DIR/deaf.sh], timeout: 200ms}\n")
            try box.script("deaf.sh", "trap '' TERM\n" + Stopping.stubborn)
            let id = try box.submit("deaf")
            let started = Date()
            try box.drain(["--kill-grace", "300ms"])
            #expect(Date().timeIntervalSince(started) < 5)
            #expect(try box.job(id).error?.code == .timeout)
            let group = try #require(box.processGroup(of: id))
            #expect(!Sandbox.groupHasLiveMembers(group))
        }

        @Test func cancelStopsARunningJobAndItsChildren() throws {
            let box = try Sandbox(kinds: "  slow: {command: [$DIR/slow.sh]}\n")
            try box.script("slow.sh", Stopping.stubborn)
            _ = try box.start(["work"], name: "work")
            let id = try box.submit("slow")
            _ = try box.wait(for: id, .running)
            #expect(try box.wait { try box.job(id).progress == 5 })
            let cancel = try box.cli(["cancel", id.text])
            #expect(cancel.status == 0)
            let job = try box.wait(for: id, .canceled, seconds: 5)
            #expect(job.state == .canceled)
            #expect(job.error?.code == .canceled)
            let group = try #require(box.processGroup(of: id))
            #expect(box.wait(2) { !Sandbox.groupHasLiveMembers(group) })
            #expect(!FileManager.default.fileExists(atPath: "\(box.stateDir)/cancel/\(id)"))
            #expect(try box.cli(["cancel", id.text]).status == 65)  // it has ended
        }

        @Test func aQueuedJobIsCanceledWithoutRunning() throws {
            let box = try Sandbox(kinds: "  demo: {builtin: demo}\n")
            let id = try box.submit("demo", ["steps=1", "interval_ms=0"])
            #expect(try box.cli(["cancel", id.text]).status == 0)
            try box.drain()
            let job = try box.job(id)
            #expect(job.state == .canceled)
            #expect(job.startedAt == nil)
        }

        @Test func theDemoIsCancelable() throws {
            let box = try Sandbox(kinds: "  demo: {builtin: demo}\n")
            _ = try box.start(["work"], name: "work")
            let id = try box.submit("demo", ["steps=1000", "interval_ms=20"])
            #expect(try box.wait { try box.job(id).progress > 0 })
            _ = try box.cli(["cancel", id.text])
            #expect(try box.wait(for: id, .canceled, seconds: 3).state == .canceled)
        }
    }
}
