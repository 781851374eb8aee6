import Foundation
import Glibc
import HeraldCore
import Testing

extension RunnerBinaryTests {
    @Suite struct Scheduling {
        @Test func twoWorkersAndARunExecuteEveryJobOnceWithinConcurrency() throws {
            let box = try Sandbox(kinds: """
                  limited: {command: [$DIR/job.sh], concurrency: 2}
                  free: {command: [$DIR/job.sh]}

                """, workers: 3)
            // Appends of one short line are atomic: the shared file is a trustworthy record.
            try box.script("job.sh", """
                echo "$HERALD_KIND $HERALD_JOB_ID start $(date +%s%N)" >> $D/record
                sleep 0.1
                echo "$HERALD_KIND $HERALD_JOB_ID end $(date +%s%N)" >> $D/record
                """)
            _ = try box.start(["work"], name: "work1")
            _ = try box.start(["work"], name: "work2")
            var ids: [JobID] = []
            for n in 0..<18 { ids.append(try box.submit(n % 3 == 0 ? "free" : "limited")) }
            try box.drain()
            #expect(try box.wait(20) { try ids.allSatisfy { try box.job($0).state == .succeeded } })
            let records = box.read("record").split(separator: "\n").map { $0.split(separator: " ") }
            let starts = records.filter { $0[2] == "start" }.map { String($0[1]) }
            #expect(starts.count == ids.count)
            #expect(Set(starts) == Set(ids.map(\.text)))
            // Ends sort before starts at the same instant: touching intervals do not overlap.
            let events = records.filter { $0[0] == "limited" }.map { (time: Int($0[3])!, delta: $0[2] == "start" ? 1 : -1) }
                .sorted { ($0.time, $0.delta) < ($1.time, $1.delta) }
            var now = 0
            var most = 0
            for event in events {
                now += event.delta
                most = max(most, now)
            }
            #expect(most <= 2)
            #expect(most >= 1)
        }

        @Test(arguments: [0, 1])
        func aKilledRunnersJobIsRecovered(retries: Int) throws {
            let box = try Sandbox(kinds: "  long: {command: [$DIR/long.sh], retries: \(retries)}\n")
            // Attempt 1 reports once, then runs long and silent (no SIGPIPE to end it); attempt 2 is quick.
            try box.script("long.sh", """
                [ "$HERALD_ATTEMPT" = 2 ] && exit 0
                echo 1 >&3
                sleep 1000
                """)
            let first = try box.start(["work"], name: "work1")
            let id = try box.submit("long")
            #expect(try box.wait { try box.job(id).progress > 0 })
            let orphans = try #require(box.processGroup(of: id))
            kill(first.processIdentifier, SIGKILL)
            first.waitUntilExit()
            #expect(Sandbox.groupHasLiveMembers(orphans))  // a dead runner cannot stop its job
            #expect(try box.job(id).state == .running)  // left behind as it was
            let started = Date()
            _ = try box.start(["work"], name: "work2")
            let final: Job = try {
                _ = try box.wait(10) { try box.job(id).state.isTerminal }
                return try box.job(id)
            }()
            #expect(Date().timeIntervalSince(started) < 5)
            #expect(box.wait(2) { !Sandbox.groupHasLiveMembers(orphans) })  // the recovering runner did
            if retries == 0 {
                #expect(final.state == .failed)
                #expect(final.error?.code == .runnerLost)
            } else {
                #expect(final.state == .succeeded)
                #expect(final.attempt == 2)
            }
        }

        @Test func sigtermRequeuesARunningJobForTheNextRunner() throws {
            let box = try Sandbox(kinds: "  long: {command: [$DIR/long.sh]}\n")
            // The first run takes long; once it has been stopped, runs are quick.
            try box.script("long.sh", """
                if [ -e $D/seen ]; then echo 100 >&3; exit 0; fi
                touch $D/seen
                trap 'echo stopped; exit 143' TERM
                i=0
                while [ $i -lt 100 ]; do echo "$i" >&3; i=$((i+1)); sleep 0.1; done
                """)
            let work = try box.start(["work", "--shutdown-grace", "300ms"], name: "work")
            let id = try box.submit("long")
            #expect(try box.wait { try box.job(id).progress > 0 })
            kill(work.processIdentifier, SIGTERM)
            #expect(box.wait(5) { !work.isRunning })
            #expect(work.terminationStatus == 0)
            let requeued = try box.job(id)
            #expect(requeued.state == .queued)
            #expect(requeued.attempt == 1)
            #expect(requeued.error == nil)
            #expect(FileManager.default.fileExists(atPath: "\(box.stateDir)/queue/\(id)"))
            try box.drain()
            let done = try box.job(id)
            #expect(done.state == .succeeded)
            #expect(done.attempt == 1)
        }

        @Test func sigtermLetsAShortJobFinish() throws {
            let box = try Sandbox(kinds: "  demo: {builtin: demo}\n")
            let work = try box.start(["work"], name: "work")
            let id = try box.submit("demo", ["steps=10", "interval_ms=50"])
            #expect(try box.wait { try box.job(id).state == .running })
            kill(work.processIdentifier, SIGTERM)
            #expect(box.wait(5) { !work.isRunning })
            #expect(work.terminationStatus == 0)
            #expect(try box.job(id).state == .succeeded)
        }
    }
}
