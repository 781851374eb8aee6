import HeraldCore
import HeraldStore

extension StreamHub {
    /// Sends a subscriber everything it lacks, in order, until its socket is full.
    ///
    /// Idempotent: it compares what the subscriber has (seq per job, log offset) with the
    /// latest known state, so it serves first connect, resume, changes and drained sockets alike.
    func catchUp(_ sub: Subscriber) {
        switch sub.target {
        case let .job(id, log, _): if let cached = cache[id] { catchUpJob(sub, cached, log: log) }
        case let .jobs(ids, _): catchUpJobs(sub, ids)
        case .dashboard, .owner:
            // One at a time until the socket is full: a snapshot of thousands of jobs must wait in
            // `pending` (where later states replace it), not overflow the outbox and drop the client.
            // (The loop walks a copy; taking `first` after each removal would rescan emptied buckets.)
            for (id, event) in sub.pending {
                guard !sub.closed, !sub.isBlocked else { break }
                sub.pending[id] = nil
                write(sub, text: event, countsAsEvent: true)
            }
        }
    }

    /// Catches up a one-job stream with `cached`, that job's latest state (the fan-out's hot path).
    func catchUpJob(_ sub: Subscriber, _ cached: CachedJob, log: Bool) {
        guard !sub.closed, !sub.ending else { return }
        if log {
            // One chunk per call: a follower with much log to catch up on continues in the hub's
            // next round (logBacklog), so other streams' events are not held up behind it.
            var logComplete = true
            if !sub.isBlocked, let piece = logPiece(cached, from: sub.logOffset, seq: sub.state.seqs[0], requestID: sub.requestID) {
                if piece.consumed > 0 {
                    sub.logOffset += piece.consumed
                    write(sub, framed: piece.frame, countsAsEvent: true)
                }
                if !piece.atEnd { logBacklog.insert(sub.token) }
                logComplete = piece.complete
            }
            if sub.isBlocked || sub.closed { return }
            // The log comes before the terminal status, so that status is sent once the whole log is out.
            if cached.job.state.isTerminal, !logComplete { return }
        }
        if sub.state.takeStatus(0, seq: cached.job.seq) {
            if !log, sub.requestID == 1 {
                write(sub, framed: cached.sharedFrame, countsAsEvent: true)
            } else {
                let cursor = StreamCursor(seq: cached.job.seq, logOffset: log ? sub.logOffset : nil)
                write(sub, text: ServerSentEvents.event("status", id: cursor.eventID, data: cached.json), countsAsEvent: true)
            }
        }
        // Only once the terminal status itself went (a blocked stream gets it when it drains).
        if cached.job.state.isTerminal, !sub.closed, sub.state.seqs[0] >= cached.job.seq {
            end(sub, finalEvent: ServerSentEvents.event("end", data: "{\"state\":\"\(cached.job.state.rawValue)\"}"))
        }
    }

    /// The `log` event for the chunk of `cached`'s log at `offset`, read and encoded once per hub
    /// round for all followers at that offset (they usually move together); nil when there is no new log.
    private func logPiece(_ cached: CachedJob, from offset: Int, seq: Int, requestID: UInt16) -> LogPiece? {
        let key = LogPiece.Key(job: cached.job.id, offset: offset, seq: seq, requestID: requestID, jobEnded: cached.job.state.isTerminal)
        if let piece = logPieces[key] { return piece }
        let id = cached.job.id
        let origin = LogPiece.Origin(job: id, offset: offset, seq: cached.job.seq)
        let read: LogRead
        if readsOffThread {
            // The reader reads it, and the job's log followers catch up when it is back (the round it comes in).
            switch logReads.lookUp(origin) {
            case let .ready(fetched): read = fetched
            case .ask:
                changeReader.readLog(origin)
                return .awaitingRead
            case .waiting: return .awaitingRead
            }
        } else {
            guard let local = try? store.log(id, from: offset, maxBytes: StreamHub.logChunkBytes) else {
                // Unreadable now (no descriptor left): asked again in a second. Not nil, which would read as "no
                // more log" and send an ended job's final status without the rest of its log.
                _ = logReads.arrived(origin, nil, now: now)
                return .awaitingRead
            }
            read = local
        }
        guard !read.bytes.isEmpty else { return nil }
        // Framed, the chunk stays within logChunkBytes too (empty lines grow sevenfold): all a
        // blocked follower ever holds is the rest of one such event.
        let fits = LogChunk.length(of: read.bytes[...], framedWithin: StreamHub.logChunkBytes)
        let bytes = read.bytes[..<fits], atEnd = read.atEnd && fits == read.bytes.count
        // Only the read that reaches the end of an ended job's log is final: a full read may
        // have cut a CRLF or a UTF-8 sequence that the next read completes.
        let chunk = LogChunk.take(bytes, isFinal: cached.job.state.isTerminal && atEnd)
        var frame: [UInt8] = []
        if chunk.consumed > 0 {
            let cursor = StreamCursor(seq: seq, logOffset: offset + chunk.consumed)
            let text = ServerSentEvents.event("log", id: cursor.eventID, data: chunk.text)
            FastCGIRecord.appendStdout(Array(text.utf8), requestID: requestID, to: &frame)
        }
        let piece = LogPiece(consumed: chunk.consumed, frame: frame, atEnd: atEnd, complete: atEnd && chunk.consumed == bytes.count)
        logPieces[key] = piece
        return piece
    }

    private func catchUpJobs(_ sub: Subscriber, _ ids: [JobID]) {
        guard !sub.closed, !sub.ending else { return }
        for (k, id) in ids.enumerated() {
            guard let cached = cache[id], sub.state.takeStatus(k, seq: cached.job.seq) else { continue }
            let cursor = MultiStreamCursor(seqs: sub.state.seqs)
            write(sub, text: ServerSentEvents.event("status", id: cursor.eventID, data: cached.json), countsAsEvent: true)
            if sub.closed { return }
        }
        let states = ids.compactMap { cache[$0]?.job.state }
        if states.count == ids.count, states.allSatisfy(\.isTerminal), !sub.isBlocked {
            let members = zip(ids, states).map { ($0.text, JSON.string($1.rawValue)) }
            end(sub, finalEvent: ServerSentEvents.event("end", data: JSON.object([("jobs", .object(members))]).text))
        }
    }

    /// A dashboard's status event: no id, since a dashboard resumes from a fresh snapshot.
    func dashboardEvent(_ job: Job) -> String { StreamHub.dashboardEvent(job, urlPrefix: urlPrefix) }

    /// A dashboard's status event for `job` (also encoded by the reader thread, for snapshots).
    static func dashboardEvent(_ job: Job, urlPrefix: String) -> String {
        ServerSentEvents.event("status", data: job.json(urlPrefix: urlPrefix).text)
    }
}
