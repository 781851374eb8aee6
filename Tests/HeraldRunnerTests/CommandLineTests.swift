import Foundation
import Glibc
import HeraldCore
import Testing

extension RunnerBinaryTests {
    @Suite struct CommandLine {
        static let kinds = """
              demo: {builtin: demo}
              report: {command: [/bin/true], params: {month: '^[0-9]{4}-[0-9]{2}$'}}

            """

        @Test func submitWaitExitsWithTheJobsOutcome() throws {
            let box = try Sandbox(kinds: CommandLine.kinds)
            _ = try box.start(["work"], name: "work")
            let ok = try box.cli(["submit", "demo", "-p", "steps=3", "-p", "interval_ms=10", "--wait"])
            #expect(ok.status == 0)
            let lines = ok.out.split(separator: "\n")
            #expect(JobID(lines.first ?? "") != nil)
            #expect(lines.last?.hasPrefix("succeeded 100%") == true)
            let failed = try box.cli(["submit", "demo", "-p", "steps=3", "-p", "interval_ms=10", "-p", "fail_at=2", "--wait", "--json"])
            #expect(failed.status == 1)
            let json = try JSON.parse(failed.out.trimmingCharacters(in: .whitespacesAndNewlines))
            #expect(json["state"] == .string("failed"))
            #expect(json["links"]?["self"]?.stringValue?.hasPrefix("/jobs/") == true)

            let waiting = try box.start(["submit", "demo", "-p", "steps=1000", "-p", "interval_ms=20", "--wait"], name: "waiting")
            #expect(box.wait { JobID(box.read("waiting.out").prefix(26)) != nil })
            let id = try #require(JobID(box.read("waiting.out").prefix(26)))
            _ = try box.wait(for: id, .running)
            #expect(try box.cli(["cancel", id.text]).status == 0)
            #expect(box.wait(5) { !waiting.isRunning })
            #expect(waiting.terminationStatus == 2)
        }

        @Test func statusListAndLogs() throws {
            let box = try Sandbox(kinds: CommandLine.kinds)
            let id = try box.submit("demo", ["steps=2", "interval_ms=0"])
            let other = try box.submit("report", ["month=2026-10"])
            try box.drain()
            let status = try box.cli(["status", id.text, "--json"])
            #expect(status.status == 0)
            #expect(try JSON.parse(status.out)["state"] == .string("succeeded"))
            #expect(try box.cli(["status", id.text]).out.contains("state:     succeeded"))
            let list = try box.cli(["list", "--kind", "report", "--json"])
            guard case let .array(jobs) = try JSON.parse(list.out) else { Issue.record("not an array"); return }
            #expect(jobs.map { $0["id"]?.stringValue } == [other.text])
            #expect(try box.cli(["list", "--state", "queued"]).out.isEmpty)
            #expect(try box.cli(["logs", id.text, "--follow"]).out == "step 1/2\nstep 2/2\n")
        }

        @Test func logsFollowEndsWithTheJob() throws {
            let box = try Sandbox(kinds: CommandLine.kinds)
            _ = try box.start(["work"], name: "work")
            let id = try box.submit("demo", ["steps=5", "interval_ms=40"])
            let follow = try box.cli(["logs", id.text, "--follow"], timeout: 10)
            #expect(follow.status == 0)
            #expect(follow.out == (1...5).map { "step \($0)/5\n" }.joined())
        }

        @Test func gcRemovesEndedJobs() throws {
            let box = try Sandbox(kinds: CommandLine.kinds)
            let id = try box.submit("demo", ["steps=1", "interval_ms=0"])
            try box.drain()
            #expect(try box.cli(["gc"]).out.isEmpty)  // the default retention keeps it
            let dry = try box.cli(["gc", "--older-than", "0ms", "--dry-run"])
            #expect(dry.out.contains("would remove \(id)"))
            #expect((try? box.job(id)) != nil)
            #expect(try box.cli(["gc", "--older-than", "0ms"]).status == 0)
            #expect((try? box.job(id)) == nil)
            #expect(!FileManager.default.fileExists(atPath: "\(box.stateDir)/logs/\(id).log"))
        }

        @Test func checkConfigNamesTheKeyAndLine() throws {
            let box = try Sandbox(kinds: CommandLine.kinds)
            #expect(try box.cli(["check-config"]).status == 0)
            let bad = box.dir + "/bad.yml"
            try "state_dir: /tmp/x\nkinds:\n  demo:\n    builtin: demo\n    timeout: soon\n".write(toFile: bad, atomically: true, encoding: .utf8)
            let result = try box.cli(["check-config"], config: bad)
            #expect(result.status == 78)
            #expect(result.err.contains("kinds.demo.timeout"))
            #expect(result.err.contains("line 5"))
            #expect(try box.cli(["list"], config: bad).status == 78)
            #expect(try box.cli(["run"], config: box.dir + "/missing.yml").status == 78)
        }

        @Test func submitRefusesAJobLargerThanRunnersTakeInsteadOfLosingIt() throws {
            let box = try Sandbox(kinds: "  big: {command: [/bin/true], params: {a: '^a*$', b: '^a*$', c: '^a*$'}}\n")
            // Three values just under Linux's 128 KiB per argument: together over what a runner reads
            // of a submission with max_body_bytes 65536 (4 × 64 KiB + 64 KiB).
            let value = String(repeating: "a", count: 120_000)
            let result = try box.cli(["submit", "big", "-p", "a=\(value)", "-p", "b=\(value)", "-p", "c=\(value)"])
            #expect(result.status == 65)
            #expect(result.err.contains("bytes"))
            #expect(try FileManager.default.contentsOfDirectory(atPath: box.stateDir + "/new").isEmpty)
        }

        @Test func exitCodesForUsageBadInputAndAMissingStateDirectory() throws {
            let box = try Sandbox(kinds: CommandLine.kinds)
            #expect(try box.cli(["submit"]).status == 64)
            #expect(try box.cli(["list", "--state", "sleeping"]).status == 64)
            #expect(try box.cli(["submit", "demo", "-p", "novalue"]).status == 64)
            #expect(try box.cli(["no-such-command"]).status == 64)
            try box.drain()  // creates the state directory
            let unknown = try box.cli(["submit", "nope"])
            #expect(unknown.status == 65)
            #expect(unknown.err.contains("no job kind named 'nope'"))
            let badParam = try box.cli(["submit", "report", "-p", "month=2026-10\n"])
            #expect(badParam.status == 65)
            #expect(badParam.err.contains("month"))
            #expect(try box.cli(["submit", "demo", "-p", "steps=0"]).status == 65)
            #expect(try box.cli(["status", "not-an-id"]).status == 65)
            #expect(try box.cli(["status", "01aaaaaaaaaaaaaaaaaaaaaaaa"]).status == 65)
            let gone = box.dir + "/gone.yml"
            try "state_dir: \(box.dir)/nowhere\nkinds:\n  demo: {builtin: demo}\n".write(toFile: gone, atomically: true, encoding: .utf8)
            #expect(try box.cli(["submit", "demo"], config: gone).status == 69)
            #expect(try box.cli(["list"], config: gone).status == 69)
            // A drain whose pass fails (queue.lock cannot be opened) says so: 69, not 0 and a log line.
            let waiting = try box.submit("demo", ["steps=1", "interval_ms=0"])
            let lock = box.stateDir + "/queue.lock"
            try? FileManager.default.removeItem(atPath: lock)
            try FileManager.default.createDirectory(atPath: lock, withIntermediateDirectories: false)
            let failed = try box.cli(["run"])
            #expect(failed.status == 69)
            #expect(failed.err.contains("queue.lock"))
            try FileManager.default.removeItem(atPath: lock)
            try box.drain()
            #expect(try box.job(waiting).state == .succeeded)
        }
    }
}
