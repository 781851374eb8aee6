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

        @Test(arguments: [("work", nil), ("work", "poll"), ("run", nil), ("run", "poll")] as [(String, String?)])
        func aCancelRequestReachesTheRunningJobThroughTheStoreWatcher(command: String, watch: String?) throws {
            // No attempt polls for cancel requests: the scheduler's watcher (inotify, or the polling
            // fallback) reports them, in `run` as in `work`.
            let box = try Sandbox(kinds: "  slow: {command: [$DIR/slow.sh]}\n")
            try box.script("slow.sh", Stopping.stubborn)
            let id = try box.submit("slow")
            _ = try box.start([command], name: command, environment: watch.map { ["HERALD_WATCH": $0] } ?? [:])
            #expect(try box.wait { try box.job(id).progress == 5 })
            #expect(try box.cli(["cancel", id.text]).status == 0)
            let job = try box.wait(for: id, .canceled, seconds: 5)
            #expect(job.state == .canceled)
            let group = try #require(box.processGroup(of: id))
            #expect(box.wait(2) { !Sandbox.groupHasLiveMembers(group) })
        }

        /// A program that leaves its process group twice: `setsid sleep 1000` keeps the job's environment,
        /// `setsid env -i sleep 0.3` does not and ends by itself. Then it fails, succeeds, or hangs.
        static let escaping = """
            setsid sleep 1000 &
            echo $! > $D/kept.$HERALD_JOB_ID
            setsid env -i sleep 0.3 &
            echo $! > $D/bare.$HERALD_JOB_ID
            echo 5 escaped >&3
            case "$1" in fail) exit 3;; ok) exit 0;; esac
            sleep 1000
            """

        @Test func processesThatLeaveTheGroupAreStoppedAndReapedUnderWork() throws {
            let box = try Sandbox(kinds: """
                  fail: {command: [$DIR/escape.sh, fail]}
                  ok: {command: [$DIR/escape.sh, ok]}
                  slow: {command: [$DIR/escape.sh, hang], timeout: 500ms}
                  hang: {command: [$DIR/escape.sh, hang]}

                """)
            try box.script("escape.sh", Stopping.escaping)
            let work = try box.start(["work"], name: "work")
            let failed = try box.submit("fail"), succeeded = try box.submit("ok")
            let timedOut = try box.submit("slow"), canceled = try box.submit("hang")
            let ids = [failed, succeeded, timedOut, canceled]
            func pid(_ file: String) -> pid_t? { pid_t(box.read(file).trimmingCharacters(in: .whitespacesAndNewlines)) }
            defer { for id in ids { if let kept = pid("kept.\(id)") { kill(kept, SIGKILL) } } }  // if the runner left them
            #expect(try box.wait { try box.job(canceled).progress == 5 })
            #expect(try box.cli(["cancel", canceled.text]).status == 0)
            for (id, state) in zip(ids, [JobState.failed, .succeeded, .failed, .canceled]) {
                #expect(try box.wait(for: id, state, seconds: 5).state == state)
            }
            // The attempts still get their programs' own exit statuses.
            #expect(try box.job(failed).exitCode == 3)
            #expect(try box.job(failed).error?.code == .exitStatus)
            #expect(try box.job(succeeded).exitCode == 0)
            #expect(try box.job(timedOut).error?.code == .timeout)
            for id in ids {
                let kept = try #require(pid("kept.\(id)")), bare = try #require(pid("bare.\(id)"))
                #expect(box.wait(3) { !Sandbox.exists(kept) }, "job \(id): its escaped 'sleep 1000' outlived it")
                #expect(box.wait(3) { !Sandbox.exists(bare) }, "job \(id): its escaped 'sleep 0.3' was not reaped")
            }
            #expect(Sandbox.zombies(of: work.processIdentifier) == [])
            #expect(work.isRunning)
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
