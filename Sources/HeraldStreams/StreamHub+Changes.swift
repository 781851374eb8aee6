import HeraldCore
import HeraldPOSIX
import HeraldStore

/// What the store reports changed, brought to the streams that want it.
extension StreamHub {
    func applyChanges() {
        let changes: [StoreChange]
        do { changes = try watcher.changes() } catch {
            log("error: watching the store: \(error)")
            return
        }
        // A piece read earlier this round may predate the log writes these notices report.
        if !changes.isEmpty { logPieces.removeAll(keepingCapacity: true) }
        var changed = Set<JobID>()
        var logsGrown = Set<JobID>()
        for change in changes {
            switch change {
            case let .job(id), let .submitted(id): changed.insert(id)
            case let .log(id): logsGrown.insert(id)
            case .cancelRequested: break
            case .everything:
                // Changes may have been missed: every followed job is read again (past the round's budget,
                // by the reader), and every log follower catches up from its offset.
                changed.formUnion(followers.jobs)
                logsGrown.formUnion(followers.jobs)
            }
        }
        for id in logsGrown { catchUpLogFollowers(of: id) }
        if !changed.isEmpty { read(changed: changed) }
    }

    /// Reads the `changed` jobs someone watches, a bounded few here and the rest by the reader, and applies them.
    func read(changed: Set<JobID>) {
        // An owner stream may want any changed job: its owner is known once it is read.
        let reads = ChangedJobs(Array(changed), isFollowed: { followers[$0] != nil }, dashboardsOpen: !dashboards.isEmpty || !ownerStreams.isEmpty,
                                budget: readsPerRound)
        if !reads.now.isEmpty {
            // One read for the round's jobs (one query on PostgreSQL).
            let read = store.jobs(ids: reads.now)
            for (id, job) in read { if let job { apply(job) } else { forget(id) } }
            for id in ReadRetries.leftOut(reads.now, by: read) { jobRetries.failed(id, now: now) }
        }
        if !reads.later.isEmpty {
            // A job that ended before every open dashboard connected is no news to any of them.
            let oldest = (dashboards.compactMap { subscribers[$0]?.connectedAt }
                + ownerStreams.values.flatMap { $0.compactMap { subscribers[$0]?.connectedAt } }).min()
            changeReader.read(reads.later, endedBefore: oldest.map { $0 - 1000 } ?? .max)
        }
    }

    func catchUpLogFollowers(of id: JobID) {
        guard let subs = followers[id] else { return }
        for sub in subs.values where sub.followsLog && !sub.isBlocked { catchUp(sub) }
    }

    /// Brings the job's followers and the dashboards up to `job`, read just now by the hub or
    /// the reader; a state older than one they have changes nothing.
    func apply(_ job: Job) {
        let id = job.id
        // A stream that connected after the write but before this notice already loaded
        // the state into the cache: its followers have it, but dashboards do not yet.
        if let subs = followers[id], cache[id].map({ $0.job.seq < job.seq }) ?? true {
            let cached = CachedJob(job, urlPrefix: urlPrefix)
            cache[id] = cached
            // A blocked stream is offered the state too: StreamState decides it waits (and merges) until it drains.
            for sub in subs.values {
                if case let .job(_, log, _) = sub.target { catchUpJob(sub, cached, log: log) } else { catchUp(sub) }
            }
        }
        // The runner's ingest copies new/ID.json into jobs/ unchanged: one state, two notices.
        let owned = job.owner.flatMap { ownerStreams[$0] } ?? []
        guard !dashboards.isEmpty || !owned.isEmpty, dashboardEnded[id] == nil, job.seq > dashboardSeqs[id] ?? 0 else { return }
        if job.state.isTerminal {
            dashboardSeqs[id] = nil
            dashboardEnded[id] = Clock.monotonicMilliseconds()
        } else {
            dashboardSeqs[id] = job.seq
        }
        let event = dashboardEvent(job)
        for token in owned.isEmpty ? dashboards : dashboards.union(owned) {
            guard let sub = subscribers[token] else { continue }
            // A job that ended before this dashboard connected is no news to it (its snapshot
            // holds the jobs not yet ended): a full report after an inotify overflow must not
            // replay every kept job's end.
            if let end = job.finishedAt, end.milliseconds < sub.connectedAt - 1000 { continue }
            if let ahead = sub.aheadOfBroadcast[id] {
                if job.seq <= ahead { continue }  // its snapshot gave it this state or a newer one
                sub.aheadOfBroadcast[id] = nil
            }
            sub.pending[id] = event
            sub.snapshot?.sent(id, seq: job.seq)
            if !sub.isBlocked { catchUp(sub) }
        }
    }

    /// Ends the streams of a job whose status is gone (removed by hand, or with the whole state
    /// directory), which would otherwise get pings for ever. No `end` event, since the job did not
    /// end: the client reconnects and gets 404 (herald.js then reports the job as gone).
    func forget(_ id: JobID) {
        let subs = followers[id]?.values.filter { !$0.ending && !$0.closed } ?? []
        if !subs.isEmpty { log("job \(id.text) is gone from the store: ending its \(subs.count) streams") }
        for sub in subs { end(sub, finalEvent: ": gone\n\n") }
        dashboardSeqs[id] = nil
    }

    func continueLogs() {
        let tokens = logBacklog
        logBacklog.removeAll()
        for token in tokens { if let sub = subscribers[token], !sub.isBlocked { catchUp(sub) } }
    }
}
