import HeraldCore
import HeraldPOSIX

/// The builtin `demo` kind: `steps` steps of `interval_ms`, progress after each, failing at `fail_at`.
struct DemoProgram {
    let attempt: Attempt

    func run() -> JobEvent {
        // The params were checked at submission; an old job with bad ones runs with the defaults.
        let params = (try? DemoParams(attempt.job.params)) ?? (try! DemoParams([:]))
        let steps = params.steps
        let start = Clock.monotonicMilliseconds()
        for step in 1...steps {
            if let reason = idle(until: start + Int64(step) * Int64(params.intervalMilliseconds)) {
                attempt.log.line("stopped before step \(step)/\(steps)")
                return attempt.event(for: reason)
            }
            if step == params.failAt {
                let why = "failed at step \(step)/\(steps), as fail_at asked"
                attempt.log.line(why)
                attempt.report(ProgressReport(message: why))
                return .exited(status: 1)
            }
            attempt.log.line("step \(step)/\(steps)")
            attempt.report(ProgressReport(progress: Double(step) * 100 / Double(steps), message: "step \(step)/\(steps)"))
            attempt.writeStatus(now: Clock.monotonicMilliseconds())
        }
        return .exited(status: 0)
    }

    /// Sleeps until `due`, watching for a reason to stop and writing held-back states meanwhile.
    private func idle(until due: Int64) -> StopReason? {
        while true {
            let now = Clock.monotonicMilliseconds()
            if let reason = attempt.stops.check(now: now) { return reason }
            attempt.writeStatus(now: now)
            if now >= due { return nil }
            Clock.sleep(milliseconds: Int(attempt.waitMilliseconds(now: now, deadlines: [due, attempt.stops.nextCheck])))
        }
    }
}
