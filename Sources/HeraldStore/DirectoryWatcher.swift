import Glibc
import HeraldCore
import HeraldPOSIX

/// Watches the state directory: one inotify watch per directory (never per job or per client),
/// or, where inotify is not available, a scan of the directories every `pollIntervalMilliseconds`.
/// Every directory with changes to report by default; a runner's watcher only new/ and cancel/.
final class DirectoryWatcher: StoreWatcher {
    private let store: DirectoryStore
    private let inotify: Inotify?
    private var directories: [Int32: String] = [:]
    private var seen: [String: [String: Int64]] = [:]  // polling: dir -> name -> mtime+size fingerprint
    /// The full listing an overflow asked for failed (EMFILE…): it is done at the next call.
    private var resyncPending = false
    let pollIntervalMilliseconds: Int

    var fd: Int32? { inotify?.fd.rawValue }

    /// A watcher of `watched` (each one of jobs/, new/, logs/, cancel/).
    init(store: DirectoryStore, watched: [String]? = nil, forcePolling: Bool = ProcessEnvironment.forcePolling) throws(StoreError) {
        self.store = store
        pollIntervalMilliseconds = 250
        let watched = watched ?? [store.jobsDir, store.new, store.logs, store.cancel]
        if !forcePolling, let inotify = try? Inotify() {
            self.inotify = inotify
            for dir in watched {
                // A status file deleted (a wipe, by hand) is reported too: its streams must end.
                let mask = dir == store.logs ? UInt32(IN_MODIFY | IN_CREATE)
                    : UInt32(IN_MOVED_TO | IN_CREATE | IN_CLOSE_WRITE) | (dir == store.jobsDir ? UInt32(IN_DELETE) : 0)
                do { directories[try inotify.watch(dir, mask: mask)] = dir } catch { throw store.unavailable(error) }
            }
        } else {
            inotify = nil
            for dir in watched { seen[dir] = try fingerprints(dir) }
        }
    }

    deinit { inotify?.fd.close() }

    func changes() throws(StoreError) -> [StoreChange] {
        if let inotify {
            let events: [Inotify.Event]
            do { events = try inotify.readEvents() } catch { throw store.unavailable(error) }
            return changes(from: events)
        }
        var changes = Set<StoreChange>()
        for (dir, before) in seen {
            let now = try fingerprints(dir)
            // Files that appeared, changed or went away.
            for name in Set(now.keys).union(before.keys) where before[name] != now[name] {
                if let change = change(in: dir, name: name) { changes.insert(change) }
            }
            seen[dir] = now
        }
        return Array(changes)
    }

    /// What inotify `events` report. After a queue overflow (the kernel dropped events) that is
    /// every file there is: readers compare seqs and log offsets, so followers get nothing twice.
    func changes(from events: [Inotify.Event]) -> [StoreChange] {
        var changes = Set<StoreChange>()
        var overflowed = resyncPending
        for event in events {
            if event.mask & UInt32(IN_Q_OVERFLOW) != 0 {
                overflowed = true
            } else if let dir = directories[event.watch], let change = change(in: dir, name: event.name) {
                changes.insert(change)
            }
        }
        if overflowed {
            resyncPending = false
            do {
                for dir in directories.values {
                    for name in try store.names(dir) {
                        if let change = change(in: dir, name: name) { changes.insert(change) }
                    }
                }
            } catch {
                resyncPending = true  // listed again at the next call; the events read are still reported
            }
        }
        return Array(changes)
    }

    private func change(in dir: String, name: String) -> StoreChange? {
        switch dir {
        case store.jobsDir: return DirectoryStore.id(fromFileName: name, suffix: ".json").map(StoreChange.job)
        case store.new: return DirectoryStore.id(fromFileName: name, suffix: ".json").map(StoreChange.submitted)
        case store.logs: return DirectoryStore.id(fromFileName: name, suffix: ".log").map(StoreChange.log)
        case store.cancel: return JobID(name).map(StoreChange.cancelRequested)
        default: return nil
        }
    }

    private func fingerprints(_ dir: String) throws(StoreError) -> [String: Int64] {
        var result: [String: Int64] = [:]
        for name in try store.names(dir) {
            let path = "\(dir)/\(name)"
            result[name] = (FileSystem.modificationTime(path) ?? 0) &* 1_000_003 &+ Int64(FileSystem.size(path) ?? 0)
        }
        return result
    }
}

/// Settings read from the environment once.
enum ProcessEnvironment {
    /// `HERALD_WATCH=poll` forces the polling watcher (for filesystems without inotify, and for tests).
    static let forcePolling: Bool = getenv("HERALD_WATCH").map { String(cString: $0) == "poll" } ?? false
}
