/// A failure libpq or the server reported: the message, and the SQLSTATE when the server sent one.
public struct PostgresError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of failure this is, which decides what the caller does next.
    public enum Kind: Sendable, Equatable {
        /// The conninfo (`database_url`) does not parse: only another configuration helps.
        case badConninfo
        /// No connection, or it broke: drop it and connect again later.
        case connection
        /// The statement failed on a working connection (constraint, permission, syntax).
        case query
    }

    public let message: String
    public let sqlState: String?
    public let kind: Kind

    /// An error as libpq or the server stated it.
    public init(message: String, sqlState: String?, kind: Kind) {
        self.message = message
        self.sqlState = sqlState
        self.kind = kind
    }

    public var description: String { sqlState.map { "\(message) (SQLSTATE \($0))" } ?? message }

    /// Whether a SQLSTATE says the session is over: class 08 (connection exception), or the server
    /// shutting down or refusing connections for now (57P01–57P03).
    public static func meansConnectionLost(_ state: String) -> Bool {
        state.hasPrefix("08") || ["57P01", "57P02", "57P03"].contains(state)
    }

    /// insufficient_privilege: the role lacks a grant.
    public var isPermissionDenied: Bool { sqlState == "42501" }
    /// serialization_failure or deadlock_detected: the transaction may simply be run again.
    public var isRetryable: Bool { sqlState == "40001" || sqlState == "40P01" }
    /// undefined_table, undefined_function or invalid_schema_name: the schema is not there (yet).
    public var isMissingSchema: Bool { ["42P01", "42883", "3F000"].contains(sqlState ?? "") }
}
