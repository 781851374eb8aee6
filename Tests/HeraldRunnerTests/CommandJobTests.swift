import Foundation
import Glibc
import HeraldCore
import HeraldPOSIX
@testable import HeraldStore
import Testing

extension RunnerBinaryTests {
    @Suite struct CommandJobs {
        @Test func progressOnFd3AndAResult() throws {
            let box = try Sandbox(kinds: "  report: {command: [$DIR/report.sh]}\n")
            try box.script("report.sh", """
                echo "10 starting" >&3
                echo 'not a report' >&3
                echo "to stdout"
                echo "to stderr" >&2
                echo '{"progress": 60, "message": "rendering", "result": {"pages": 4}}' >&3
                printf '70 last line without LF' >&3
                """)
            let id = try box.submit("report")
            try box.drain()
            let job = try box.job(id)
            #expect(job.state == .succeeded)
            #expect(job.progress == 100)
            #expect(job.exitCode == 0)
            #expect(job.error == nil)
            #expect(job.message == "last line without LF")
            #expect(job.result == .object([("pages", .number("4"))]))
            #expect(job.seq >= 3)
            let log = box.read("state/logs/\(id).log")
            #expect(log.contains("to stdout\n"))
            #expect(log.contains("to stderr\n"))
        }

        @Test func aFailingProgramFailsWithItsExitStatus() throws {
            let box = try Sandbox(kinds: "  report: {command: [$DIR/fail.sh]}\n")
            try box.script("fail.sh", "echo 30 >&3\nexit 3")
            let id = try box.submit("report")
            try box.drain()
            let job = try box.job(id)
            #expect(job.state == .failed)
            #expect(job.exitCode == 3)
            #expect(job.error?.code == .exitStatus)
            #expect(job.attempt == 1)
            #expect(job.finishedAt != nil)
        }

        @Test func aQueuedJobWhoseParamsTheKindRefusesTodayFailsWithoutRunning() throws {
            let box = try Sandbox(kinds: """
                  report: {command: [$DIR/report.sh], params: {month: '^[0-9]{4}-[0-9]{2}$'}, retries: 2}

                """)
            try box.script("report.sh", "touch $D/ran")
            // A queued job in jobs/ whose params the kind refuses: planted, or queued before the regex was tightened.
            let store = try DirectoryStore(root: box.stateDir, create: false)
            let now = Timestamp(milliseconds: Clock.wallMilliseconds())
            let job = Job(id: JobID(milliseconds: UInt64(now.milliseconds), random: RandomSource.bytes(10)), kind: "report",
                          params: ["month": "--output=/etc/passwd"], now: now)
            try store.writeTransition(job)
            try store.enqueue(job.id)
            try box.drain()
            let failed = try box.job(job.id)
            #expect(failed.state == .failed)
            #expect(failed.attempt == 1)  // refused params stay refused: no retry
            #expect(failed.error?.code == .spawnFailed)
            #expect(failed.error?.message.contains("param 'month'") == true)
            #expect(!FileManager.default.fileExists(atPath: box.dir + "/ran"))
        }

        @Test func aRetryIsASecondAttempt() throws {
            let box = try Sandbox(kinds: """
                  flaky: {command: [$DIR/flaky.sh], retries: 1}
                  broken: {command: [$DIR/broken.sh], retries: 1}

                """)
            try box.script("flaky.sh", "echo \"attempt $HERALD_ATTEMPT\"\n[ \"$HERALD_ATTEMPT\" = 2 ]")
            try box.script("broken.sh", "exit 1")
            let flaky = try box.submit("flaky")
            let broken = try box.submit("broken")
            try box.drain()
            let succeeded = try box.job(flaky)
            #expect(succeeded.state == .succeeded)
            #expect(succeeded.attempt == 2)
            #expect(box.read("state/logs/\(flaky).log") == "attempt 1\nattempt 2\n")
            let failed = try box.job(broken)
            #expect(failed.state == .failed)
            #expect(failed.attempt == 2)
        }

        @Test func paramsArriveVerbatimAndNothingIsInterpreted() throws {
            let box = try Sandbox(kinds: "  report: {command: [$DIR/params.sh, --fixed, 'two words'], params: {month: '^.*$', n: '^[0-9]+$'}}\n")
            try box.script("params.sh", """
                printf '%s' "$HERALD_PARAM_MONTH" > $D/env.txt
                cat > $D/stdin.txt
                printf '%s|' "$@" > $D/argv.txt
                env | cut -d= -f1 | sort | tr '\\n' ' ' > $D/names.txt
                """)
            let evil = "$(touch \(box.dir)/pwned); rm -rf \(box.dir)/victim `touch \(box.dir)/pwned2`"
            try FileManager.default.createDirectory(atPath: box.dir + "/victim", withIntermediateDirectories: false)
            let id = try box.submit("report", ["month=\(evil)", "n=42"])
            try box.drain()
            #expect(try box.job(id).state == .succeeded)
            #expect(box.read("env.txt") == evil)
            let stdin = try JSON.parse(box.read("stdin.txt"))
            #expect(stdin == .object([("month", .string(evil)), ("n", .string("42"))]))
            #expect(box.read("argv.txt") == "--fixed|two words|")
            #expect(!FileManager.default.fileExists(atPath: box.dir + "/pwned"))
            #expect(!FileManager.default.fileExists(atPath: box.dir + "/pwned2"))
            #expect(FileManager.default.fileExists(atPath: box.dir + "/victim"))
            // The shell adds PWD, SHLVL and _ itself; everything else is Herald's.
            let names = Set(box.read("names.txt").split(separator: " ").map(String.init)).subtracting(["PWD", "SHLVL", "_"])
            #expect(names == ["PATH", "HOME", "LANG", "HERALD_JOB_ID", "HERALD_KIND", "HERALD_ATTEMPT", "HERALD_PROGRESS_FD",
                              "HERALD_PARAM_MONTH", "HERALD_PARAM_N"])
        }

        @Test func theLogIsCutAt10MiBWithAMarker() throws {
            let box = try Sandbox(kinds: "  noisy: {command: [$DIR/noisy.sh]}\n")
            try box.script("noisy.sh", "head -c 12000000 /dev/zero | tr '\\0' a\necho 100 done >&3")
            let id = try box.submit("noisy")
            try box.drain()
            #expect(try box.job(id).state == .succeeded)  // the program was never blocked on a full pipe
            let log = try Data(contentsOf: URL(fileURLWithPath: "\(box.stateDir)/logs/\(id).log"))
            let marker = Data("\n[herald: log truncated at 10 MiB]\n".utf8)
            #expect(log.count == 10 << 20 + marker.count)
            #expect(log.suffix(marker.count) == marker)
            #expect(log.prefix(10 << 20).allSatisfy { $0 == UInt8(ascii: "a") })
        }

        @Test func aProgramThatCannotStartFailsWithSpawnFailed() throws {
            let box = try Sandbox(kinds: "  missing: {command: [$DIR/no-such-program]}\n")
            let id = try box.submit("missing")
            try box.drain()
            let job = try box.job(id)
            #expect(job.state == .failed)
            #expect(job.error?.code == .spawnFailed)
        }

        @Test func childrenLeftBehindAreStoppedWhenTheProgramExits() throws {
            let box = try Sandbox(kinds: "  report: {command: [$DIR/leave.sh]}\n")
            try box.script("leave.sh", "sleep 1000 &\nsleep 1000 &\nexit 0")
            let id = try box.submit("report")
            try box.drain()
            #expect(try box.job(id).state == .succeeded)
            let group = try #require(box.processGroup(of: id))
            #expect(!Sandbox.groupHasLiveMembers(group))
            #expect(kill(-group, 0) != 0)  // not even zombies: the runner reaped them
        }

        @Test func theDemoKindStepsAndFailsAtFailAt() throws {
            let box = try Sandbox(kinds: "  demo: {builtin: demo}\n")
            let ok = try box.submit("demo", ["steps=5", "interval_ms=10"])
            let bad = try box.submit("demo", ["steps=5", "interval_ms=10", "fail_at=3"])
            try box.drain()
            let done = try box.job(ok)
            #expect(done.state == .succeeded)
            #expect(done.message == "step 5/5")
            #expect(box.read("state/logs/\(ok).log") == (1...5).map { "step \($0)/5\n" }.joined())
            let failed = try box.job(bad)
            #expect(failed.state == .failed)
            #expect(failed.exitCode == 1)
            #expect(failed.error?.code == .exitStatus)
            #expect(failed.progress == 40)
            #expect(failed.message?.contains("step 3/5") == true)
        }
    }
}
