import CHeraldSys
import Glibc

/// An epoll instance keyed by 64-bit tokens.
public struct Epoll: Sendable {
    /// The epoll descriptor.
    public let fd: FileDescriptor

    public static let readable = HERALD_EPOLLIN
    public static let writable = HERALD_EPOLLOUT
    public static let peerHangUp = HERALD_EPOLLRDHUP
    public static let hangUp = HERALD_EPOLLHUP
    public static let error = HERALD_EPOLLERR
    /// Report once, then stay disarmed until modified.
    public static let oneShot = HERALD_EPOLLONESHOT

    /// A new close-on-exec epoll instance.
    public init() throws(SystemError) {
        fd = FileDescriptor(rawValue: try retryingEINTR("epoll_create1") { epoll_create1(Int32(EPOLL_CLOEXEC)) })
    }

    /// Starts watching `target` for `events`, reporting `token`.
    public func add(_ target: FileDescriptor, events: UInt32, token: UInt64) throws(SystemError) {
        try retryingEINTR("epoll_ctl(ADD)") { herald_epoll_ctl(fd.rawValue, EPOLL_CTL_ADD, target.rawValue, events, token) }
    }

    /// Changes the events watched on `target`.
    public func modify(_ target: FileDescriptor, events: UInt32, token: UInt64) throws(SystemError) {
        try retryingEINTR("epoll_ctl(MOD)") { herald_epoll_ctl(fd.rawValue, EPOLL_CTL_MOD, target.rawValue, events, token) }
    }

    /// Stops watching `target` (closing it does too, but only once every duplicate is closed).
    public func remove(_ target: FileDescriptor) {
        _ = herald_epoll_ctl(fd.rawValue, EPOLL_CTL_DEL, target.rawValue, 0, 0)
    }

    /// Waits up to `timeoutMilliseconds` (-1: forever) and returns (token, events) pairs.
    public func wait(timeoutMilliseconds: Int32, max: Int = 256) -> [(token: UInt64, events: UInt32)] {
        var tokens = [UInt64](repeating: 0, count: max)
        var events = [UInt32](repeating: 0, count: max)
        let n = herald_epoll_wait(fd.rawValue, &tokens, &events, Int32(max), timeoutMilliseconds)
        guard n > 0 else { return [] }
        return (0..<Int(n)).map { (tokens[$0], events[$0]) }
    }
}

/// An eventfd used to wake a thread blocked in epoll.
public struct EventFD: Sendable {
    /// The eventfd descriptor, readable when signalled.
    public let fd: FileDescriptor

    /// A new non-blocking, close-on-exec eventfd.
    public init() throws(SystemError) {
        fd = FileDescriptor(rawValue: try retryingEINTR("eventfd") { eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC)) })
    }

    /// Wakes the waiter.
    public func signal() {
        var one: UInt64 = 1
        _ = Glibc.write(fd.rawValue, &one, 8)
    }

    /// Clears the signal.
    public func drain() {
        var value: UInt64 = 0
        _ = Glibc.read(fd.rawValue, &value, 8)
    }
}
