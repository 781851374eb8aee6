// Every libpq call Herald makes, wrapped once (as HeraldFastCGI wraps libfcgi).
//
// A connection is blocking and belongs to one thread at a time, which is the model Herald's
// threads already have; the LISTEN connection hands its descriptor to a poll loop instead
// (`socket`, `consumeInput`, `notifications`). Results are copied out and freed at once, so no
// PGresult outlives the call that made it.
import CPostgres
import Glibc

/// One connection to PostgreSQL.
public final class PostgresConnection: @unchecked Sendable {
    // Used by one thread at a time (the pool hands it out, or one thread owns it): libpq's rule.
    fileprivate var handle: OpaquePointer?

    /// Settings added to every conninfo that does not set them: dead peers (a host cut off, a
    /// power loss) are noticed within ~15 s instead of the kernel's two hours, and a connect to a
    /// host that does not answer gives up after 10 s.
    public static let clientDefaults: [(String, String)] = [
        ("connect_timeout", "10"),
        ("keepalives", "1"),
        ("keepalives_idle", "5"),
        ("keepalives_interval", "3"),
        ("keepalives_count", "3"),
        ("tcp_user_timeout", "15000"),
        ("client_encoding", "UTF8"),
    ]

    /// Statements prepared on this session, by their text: each is parsed and planned once per
    /// connection, not at every call (the hub and the runner repeat a few statements thousands of times).
    private var prepared: [String: String] = [:]
    /// Past this many, statements run unprepared: a caller building SQL from parts cannot fill the session.
    static let maxPrepared = 64

    private init(handle: OpaquePointer) { self.handle = handle }

    deinit { close() }

    /// Connects with `conninfo` (a `postgresql://` URI or `key=value` pairs), adding `clientDefaults`
    /// and `application_name` where it sets none; a conninfo libpq cannot parse is `badConninfo`.
    /// `overriding` replaces settings whatever the conninfo says (the liveness session's short timeouts).
    public static func connect(_ conninfo: String, applicationName: String = "herald",
                               overriding: [(String, String)] = []) throws(PostgresError) -> PostgresConnection {
        let replaced = Set(overriding.map(\.0))
        let options = try settings(conninfo, applicationName: applicationName).filter { !replaced.contains($0.0) } + overriding
        let keys = options.map { strdup($0.0) }
        let values = options.map { strdup($0.1) }
        defer {
            keys.forEach { free($0) }
            values.forEach { free($0) }
        }
        var keyPointers: [UnsafePointer<CChar>?] = keys.map { UnsafePointer($0) } + [nil]
        var valuePointers: [UnsafePointer<CChar>?] = values.map { UnsafePointer($0) } + [nil]
        guard let handle = PQconnectdbParams(&keyPointers, &valuePointers, 0) else {
            throw PostgresError(message: "out of memory connecting", sqlState: nil, kind: .connection)
        }
        let connection = PostgresConnection(handle: handle)
        // Notices (`CREATE … IF NOT EXISTS` skipping, a shutdown's warning) are for psql users, not for Herald's stderr.
        PQsetNoticeProcessor(handle, { _, _ in }, nil)
        guard PQstatus(handle) == CONNECTION_OK else {
            throw PostgresError(message: connection.errorMessage, sqlState: nil, kind: .connection)
        }
        return connection
    }

    /// The settings `connect` uses for `conninfo`: what it sets, then the defaults it does not set.
    public static func settings(_ conninfo: String, applicationName: String) throws(PostgresError) -> [(String, String)] {
        var error: UnsafeMutablePointer<CChar>?
        guard let parsed = PQconninfoParse(conninfo, &error) else {
            let why = error.map { String(cString: $0) } ?? "out of memory"
            if let error { PQfreemem(error) }
            throw PostgresError(message: "database_url: \(trimmed(why))", sqlState: nil, kind: .badConninfo)
        }
        defer { PQconninfoFree(parsed) }
        var set: [(String, String)] = []
        var option = parsed
        while let keyword = option.pointee.keyword {
            if let value = option.pointee.val { set.append((String(cString: keyword), String(cString: value))) }
            option += 1
        }
        let named = Set(set.map(\.0))
        let defaults = clientDefaults + [("application_name", applicationName)]
        return set + defaults.filter { !named.contains($0.0) }
    }

    /// Closes the connection (idempotent).
    public func close() {
        if let handle { PQfinish(handle) }
        handle = nil
    }

    /// Whether the connection is open and usable (false after the server went away).
    public var isOK: Bool { handle.map { PQstatus($0) == CONNECTION_OK } ?? false }

    /// The server process serving this connection (for logs and for tests that end it).
    public var serverPID: Int32 { handle.map { PQbackendPID($0) } ?? 0 }

    /// The descriptor of the connection's socket, for poll/epoll (changes after `reset`).
    public var socket: Int32 { handle.map { PQsocket($0) } ?? -1 }

    /// Runs `sql` with `params` ($1, $2…) and returns its rows; one statement, or a plain
    /// multi-statement script when there are no params.
    @discardableResult
    public func execute(_ sql: String, _ params: [PostgresValue] = []) throws(PostgresError) -> PostgresRows {
        guard let handle else { throw PostgresError(message: "connection closed", sqlState: nil, kind: .connection) }
        guard !params.isEmpty else { return try rows(of: PQexec(handle, sql)) }
        let buffers = params.map { $0.buffer() }
        defer { buffers.forEach { $0.pointer.map { free($0) } } }
        let values: [UnsafePointer<CChar>?] = buffers.map { $0.pointer.map { UnsafePointer($0) } }
        let lengths = buffers.map(\.length)
        let formats = buffers.map(\.format)
        guard let name = try preparedName(for: sql, parameters: params.count) else {
            return try rows(of: PQexecParams(handle, sql, Int32(params.count), nil, values, lengths, formats, 0))
        }
        return try rows(of: PQexecPrepared(handle, name, Int32(params.count), values, lengths, formats, 0))
    }

    /// The name `sql` is prepared under on this session, preparing it now; nil when the session holds `maxPrepared` already.
    private func preparedName(for sql: String, parameters: Int) throws(PostgresError) -> String? {
        if let name = prepared[sql] { return name }
        guard prepared.count < PostgresConnection.maxPrepared else { return nil }
        let name = "herald_\(prepared.count)"
        try rows(of: PQprepare(handle, name, sql, Int32(parameters), nil))
        prepared[sql] = name
        return name
    }

    /// The rows of `result` (freed here), or the error it reports.
    @discardableResult
    private func rows(of result: OpaquePointer?) throws(PostgresError) -> PostgresRows {
        guard let result else { throw PostgresError(message: errorMessage, sqlState: nil, kind: isOK ? .query : .connection) }
        defer { PQclear(result) }
        let status = PQresultStatus(result)
        guard status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK else {
            let message = String(cString: PQresultErrorMessage(result))
            let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
            throw PostgresError(message: trimmed(message.isEmpty ? errorMessage : message), sqlState: state,
                                kind: isOK && !(state.map(PostgresError.meansConnectionLost) ?? false) ? .query : .connection)
        }
        return PostgresRows(copying: result)
    }

    /// Reads what the server sent without blocking (the LISTEN connection, when its socket is readable).
    public func consumeInput() throws(PostgresError) {
        guard let handle, PQconsumeInput(handle) == 1 else {
            throw PostgresError(message: errorMessage, sqlState: nil, kind: .connection)
        }
    }

    /// The notifications received so far, oldest first (after `consumeInput` or `execute`).
    public func notifications() -> [PostgresNotification] {
        guard let handle else { return [] }
        var received: [PostgresNotification] = []
        while let notify = PQnotifies(handle) {
            received.append(PostgresNotification(channel: String(cString: notify.pointee.relname),
                                                 payload: String(cString: notify.pointee.extra),
                                                 serverPID: notify.pointee.be_pid))
            PQfreemem(notify)
        }
        return received
    }

    /// Connects again with the same settings; false when that failed too.
    public func reset() -> Bool {
        guard let handle else { return false }
        PQreset(handle)
        prepared = [:]  // a new session has none of them
        return PQstatus(handle) == CONNECTION_OK
    }

    /// libpq's text for the last failure on this connection, one line.
    private var errorMessage: String {
        guard let handle else { return "connection closed" }
        return trimmed(String(cString: PQerrorMessage(handle)))
    }
}

/// A notification received on a LISTEN connection.
public struct PostgresNotification: Sendable, Equatable {
    public let channel: String
    public let payload: String
    public let serverPID: Int32
}

/// libpq's messages end in a newline and sometimes carry several lines: one line for logs.
func trimmed(_ message: String) -> String {
    message.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: " \t") }.filter { !$0.isEmpty }.joined(separator: "; ")
}

extension StringProtocol {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let c = s.first, set.contains(c) { s = s.dropFirst() }
        while let c = s.last, set.contains(c) { s = s.dropLast() }
        return String(s)
    }
}

extension PostgresConnection {
    /// Whether a transaction is open (or failed and not yet rolled back): such a connection must not be reused as is.
    public var isInTransaction: Bool {
        guard let handle else { return false }
        return PQtransactionStatus(handle) != PQTRANS_IDLE
    }
}
