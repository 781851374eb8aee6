import Synchronization

/// Counters the hub keeps for /metrics and /healthz; read from any thread.
public final class StreamMetrics: Sendable {
    public let openStreams = Atomic<Int>(0)
    /// Streams handed to the hub and not registered yet: they hold a descriptor too.
    public let arrivingStreams = Atomic<Int>(0)
    public let eventsSent = Atomic<Int>(0)
    public let bytesSent = Atomic<Int>(0)
    public let slowClientsDropped = Atomic<Int>(0)
    /// Bytes written to the hub but not yet taken by streams' sockets (what slow clients cost in memory).
    public let unsentBytes = Atomic<Int>(0)
    public let clientsHungUp = Atomic<Int>(0)

    public init() {}
}
