/// Something that happens to a job; `Job.applying` turns it into the next state.
public enum JobEvent: Sendable, Equatable {
    /// A runner claimed the queued job and is starting it.
    case start
    /// The program reported progress, a message or a result.
    case report(ProgressReport)
    /// The program exited with this status (0 is success).
    case exited(status: Int)
    /// The attempt ended without a clean exit: timeout, spawn failure, runner lost.
    case aborted(JobError)
    /// The runner will not start the queued job: its kind, as configured now, refuses its params.
    case refused(JobError)
    /// Someone asked for cancellation.
    case cancel
    /// The runner is shutting down: back to the queue, this attempt not counted.
    case interrupted
}

extension Job {
    /// The job after `event` at `now`, or nil when the event makes no sense in this state.
    ///
    /// `retries` is the kind's number of extra attempts: a failure with attempts left
    /// puts the job back in the queue instead of ending it. Every change raises `seq`.
    public func applying(_ event: JobEvent, at now: Timestamp, retries: Int) -> Job? {
        var next = self
        next.seq += 1
        next.updatedAt = Timestamp(milliseconds: max(now.milliseconds, updatedAt.milliseconds))
        switch (state, event) {
        case (.queued, .start):
            next.state = .running
            next.startedAt = now
            next.progress = 0
            next.message = nil
            next.exitCode = nil
        case let (.running, .report(report)):
            if let p = report.progress { next.progress = max(progress, min(100, max(0, p))) }
            if let m = report.message { next.message = m }
            if let r = report.result { next.result = r }
            guard next.progress != progress || next.message != message || next.result != result else { return nil }
        case let (.running, .exited(status)) where status == 0:
            next.state = .succeeded
            next.progress = 100
            next.exitCode = 0
            next.error = nil
            next.finishedAt = now
        case let (.running, .exited(status)):
            next.exitCode = status
            return next.failing(JobError(.exitStatus, "the program exited with status \(status)"), at: now, retries: retries)
        case let (.running, .aborted(error)):
            return next.failing(error, at: now, retries: retries)
        case let (.queued, .refused(error)):
            next.state = .failed
            next.error = error
            next.finishedAt = now
        case (.queued, .cancel), (.running, .cancel):
            next.state = .canceled
            next.error = JobError(.canceled, "canceled on request")
            next.finishedAt = now
        case (.running, .interrupted):
            next.state = .queued
            next.progress = 0
            next.message = "requeued: the runner stopped"
        default:
            return nil
        }
        return next
    }

    private func failing(_ error: JobError, at now: Timestamp, retries: Int) -> Job {
        var next = self
        next.error = error
        if attempt <= retries {
            next.state = .queued
            next.attempt += 1
            next.progress = 0
            next.message = "retrying after: \(error.message)"
        } else {
            next.state = .failed
            next.finishedAt = now
        }
        return next
    }
}
