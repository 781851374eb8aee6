/// Every stream's next deadline in one min-heap, so a hub round costs the streams that are due,
/// never a pass over all of them.
///
/// Each stream has one armed deadline. Arming it later than the armed one does nothing (the earlier
/// one fires, and the hub arms the next from the stream's schedule); arming it earlier, or disarming it,
/// leaves the old entry in the heap, where it is skipped when it comes up.
struct StreamTimers {
    private struct Entry {
        let at: Int64
        let token: UInt64
    }

    private var heap: [Entry] = []
    private var armed: [UInt64: Int64] = [:]

    /// Streams with an armed deadline.
    var count: Int { armed.count }

    /// Makes `token` due at `at` unless it is due earlier already.
    mutating func arm(_ token: UInt64, at: Int64) {
        if let current = armed[token], current <= at { return }
        armed[token] = at
        push(Entry(at: at, token: token))
    }

    /// Forgets `token` (its stream closed).
    mutating func disarm(_ token: UInt64) { armed[token] = nil }

    /// The earliest armed deadline, or nil when none is armed.
    mutating func nextDeadline() -> Int64? {
        dropStale()
        return heap.first?.at
    }

    /// Takes up to `limit` streams due at `now`, earliest first; each is disarmed (the hub arms its next deadline).
    mutating func popDue(now: Int64, limit: Int) -> [UInt64] {
        var due: [UInt64] = []
        while due.count < limit {
            dropStale()
            guard let first = heap.first, first.at <= now else { break }
            popFirst()
            armed[first.token] = nil
            due.append(first.token)
        }
        return due
    }

    /// Pops entries that no longer hold their stream's armed deadline.
    private mutating func dropStale() {
        while let first = heap.first, armed[first.token] != first.at { popFirst() }
    }

    private mutating func push(_ entry: Entry) {
        heap.append(entry)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].at < heap[parent].at else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    private mutating func popFirst() {
        let last = heap.removeLast()
        guard !heap.isEmpty else { return }
        heap[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < heap.count, heap[left].at < heap[smallest].at { smallest = left }
            if right < heap.count, heap[right].at < heap[smallest].at { smallest = right }
            if smallest == parent { return }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
