import HeraldCore
import HeraldPOSIX

// Writing to parked streams: non-blocking writes, outboxes for what a socket does not take, ending and closing.
extension StreamHub {
    /// Frames `text` as FastCGI stdout and writes it, or queues what the socket does not take.
    func write(_ sub: Subscriber, text: String, countsAsEvent: Bool = false) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count + 16)
        FastCGIRecord.appendStdout(Array(text.utf8), requestID: sub.requestID, to: &bytes)
        write(sub, framed: bytes, countsAsEvent: countsAsEvent)
    }

    /// Writes already-framed bytes (shared between subscribers of one job).
    func write(_ sub: Subscriber, framed bytes: [UInt8], countsAsEvent: Bool = false) {
        guard !sub.closed else { return }
        if countsAsEvent { metrics.eventsSent.add(1, ordering: .relaxed) }
        if sub.isBlocked {
            sub.outbox.append(contentsOf: bytes)
            metrics.unsentBytes.add(bytes.count, ordering: .relaxed)
            if sub.outbox.count - sub.outboxStart > maxOutboxBytes {
                metrics.slowClientsDropped.add(1, ordering: .relaxed)
                log("warning: dropped a stream whose client fell more than \(maxOutboxBytes) bytes behind")
                close(sub)
            }
            return
        }
        let taken: Int
        do { taken = try bytes.withUnsafeBytes { (buffer) throws(SystemError) in try sub.fd.writeAvailable(buffer) } } catch {
            close(sub)
            return
        }
        metrics.bytesSent.add(taken, ordering: .relaxed)
        if taken == bytes.count { return }
        // The rest of a frame shared by many subscribers (one job's status, one log piece) stays shared: no copy each.
        sub.outbox = bytes
        sub.outboxStart = taken
        metrics.unsentBytes.add(bytes.count - taken, ordering: .relaxed)
        sub.blockedSince = Clock.monotonicMilliseconds()
        blocked.insert(sub.token)
        try? epoll.modify(sub.fd, events: Epoll.peerHangUp | Epoll.writable, token: sub.token)
    }

    /// Writes what the socket will take from the outbox; when it empties, the subscriber catches up.
    func flush(_ sub: Subscriber) {
        while sub.isBlocked {
            let n: Int
            do {
                n = try sub.outbox.withUnsafeBytes { (buffer) throws(SystemError) in
                    try sub.fd.writeAvailable(UnsafeRawBufferPointer(rebasing: buffer[sub.outboxStart...]))
                }
            } catch {
                close(sub)
                return
            }
            if n == 0 { return }
            metrics.bytesSent.add(n, ordering: .relaxed)
            metrics.unsentBytes.subtract(n, ordering: .relaxed)
            sub.outboxStart += n
        }
        sub.outbox = []
        sub.outboxStart = 0
        sub.blockedSince = nil
        blocked.remove(sub.token)
        try? epoll.modify(sub.fd, events: Epoll.peerHangUp, token: sub.token)
        if sub.ending { close(sub) } else { catchUp(sub) }
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
        metrics.unsentBytes.subtract(sub.outbox.count - sub.outboxStart, ordering: .relaxed)
        sub.outbox = []
        sub.outboxStart = 0
        subscribers[sub.token] = nil
        blocked.remove(sub.token)
        logBacklog.remove(sub.token)
        lapsing[sub.token] = nil
        dashboards.remove(sub.token)
        if case let .owner(owner) = sub.target {
            ownerStreams[owner]?.remove(sub.token)
            if ownerStreams[owner]?.isEmpty == true { ownerStreams[owner] = nil }
        }
        if dashboards.isEmpty, ownerStreams.isEmpty {
            dashboardSeqs.removeAll()
            dashboardEnded.removeAll()
        }
        for id in sub.jobIDs {
            followers[id]?[sub.token] = nil
            if followers[id]?.isEmpty == true {
                followers[id] = nil
                cache[id] = nil
            }
        }
        metrics.openStreams.add(-1, ordering: .relaxed)
    }
}
