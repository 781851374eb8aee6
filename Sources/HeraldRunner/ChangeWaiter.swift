import HeraldPOSIX
import HeraldStore

/// Blocks until the store reports changes or a timeout passes: on the watcher's descriptor when it
/// has one (inotify), else by polling it at its interval. For the CLI's `--wait` and `--follow`.
public final class ChangeWaiter {
    private let watcher: any StoreWatcher
    private let epoll: Epoll?

    /// A waiter on a new watcher of `store`.
    public init(store: any JobStore) throws(StoreError) {
        watcher = try store.watch()
        if let fd = watcher.fd {
            do {
                let epoll = try Epoll()
                try epoll.add(FileDescriptor(rawValue: fd), events: Epoll.readable, token: 0)
                self.epoll = epoll
            } catch { throw .unavailable(error.description) }
        } else {
            epoll = nil
        }
    }

    deinit { epoll?.fd.close() }

    /// The changes that happened within `timeoutMilliseconds` (empty when none did).
    public func wait(timeoutMilliseconds: Int) throws(StoreError) -> [StoreChange] {
        if let epoll {
            _ = epoll.wait(timeoutMilliseconds: Int32(timeoutMilliseconds))
        } else {
            Clock.sleep(milliseconds: min(timeoutMilliseconds, watcher.pollIntervalMilliseconds))
        }
        return try watcher.changes()
    }
}
