import HeraldCore
import HeraldPOSIX

// Writing to parked streams: non-blocking writes, the bytes a socket does not take yet, ending and closing.
extension StreamHub {
    /// Frames `text` as FastCGI stdout and writes it, or queues what the socket does not take.
    func write(_ sub: Subscriber, text: String, countsAsEvent: Bool = false) {
        write(sub, framed: StreamHub.frame(text, requestID: sub.requestID), countsAsEvent: countsAsEvent)
    }

    /// Writes already-framed bytes (shared between subscribers of one job), queueing what the socket does not take.
    func write(_ sub: Subscriber, framed bytes: [UInt8], countsAsEvent: Bool = false) {
        guard !sub.closed else { return }
        if countsAsEvent { metrics.eventsSent.add(1, ordering: .relaxed) }
        let wasBlocked = sub.isBlocked
        sub.state.queue(bytes)
        metrics.unsentBytes.add(bytes.count, ordering: .relaxed)
        if wasBlocked {
            if sub.state.unsent.count > maxOutboxBytes {
                metrics.slowClientsDropped.add(1, ordering: .relaxed)
                log("warning: dropped a stream whose client fell more than \(maxOutboxBytes) bytes behind")
                close(sub)
            }
            return
        }
        writeUnsent(sub)
        guard !sub.closed, sub.isBlocked else { return }
        // Blocked: the socket says when it takes bytes again, and the write deadline is armed.
        try? epoll.modify(sub.fd, events: Epoll.peerHangUp | Epoll.writable, token: sub.token)
        timers.arm(sub.token, at: sub.state.schedule.nextDeadline)
    }

    /// Writes what the socket takes from the unsent bytes; when they are all out, the subscriber catches up.
    func flush(_ sub: Subscriber) {
        writeUnsent(sub)
        guard !sub.closed, !sub.isBlocked else { return }
        try? epoll.modify(sub.fd, events: Epoll.peerHangUp, token: sub.token)
        if sub.ending { close(sub) } else { catchUp(sub) }
    }

    /// Writes unsent bytes until they are all out or the socket is full.
    private func writeUnsent(_ sub: Subscriber) {
        while true {
            let n: Int
            do { n = try sub.state.unsent.withFirstBytes { (bytes) throws(SystemError) in try sub.fd.writeAvailable(bytes) } } catch {
                close(sub)
                return
            }
            metrics.bytesSent.add(n, ordering: .relaxed)
            metrics.unsentBytes.subtract(n, ordering: .relaxed)
            if sub.state.didWrite(n, now: now) == .drained || n == 0 { return }
        }
    }

    /// Queues `finalEvent` and the end of the FastCGI response; the connection closes once they are written.
    func end(_ sub: Subscriber, head: Bool = false, finalEvent: String) {
        var bytes: [UInt8] = []
        let text = (head ? "Status: 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-store\r\n\r\n" : "") + finalEvent
        FastCGIRecord.appendStdout(Array(text.utf8), requestID: sub.requestID, to: &bytes)
        FastCGIRecord.appendEnd(requestID: sub.requestID, to: &bytes)
        sub.ending = true
        write(sub, framed: bytes, countsAsEvent: true)
        if !sub.closed, !sub.isBlocked { close(sub) }
    }

    func close(_ sub: Subscriber) {
        guard !sub.closed else { return }
        sub.closed = true
        epoll.remove(sub.fd)
        sub.fd.close()
        metrics.unsentBytes.subtract(sub.state.dropUnsent(), ordering: .relaxed)
        subscribers[sub.token] = nil
        timers.disarm(sub.token)
        logBacklog.remove(sub.token)
        dashboards.remove(sub.token)
        if case let .owner(owner) = sub.target {
            ownerStreams[owner]?.remove(sub.token)
            if ownerStreams[owner]?.isEmpty == true { ownerStreams[owner] = nil }
        }
        if dashboards.isEmpty, ownerStreams.isEmpty {
            dashboardSeqs.removeAll()
            dashboardEnded.removeAll()
        }
        followers.remove(token: sub.token, jobs: sub.jobIDs)
        metrics.openStreams.add(-1, ordering: .relaxed)
    }
}
