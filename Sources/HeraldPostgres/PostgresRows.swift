import CPostgres

/// The rows a statement returned, copied out of libpq's result (text format).
public struct PostgresRows: Sendable {
    /// The column names, in order.
    public let columns: [String]
    /// Each row's values; nil is SQL NULL.
    public let rows: [[String?]]
    /// How many rows an INSERT, UPDATE or DELETE touched (0 for others).
    public let affected: Int

    init(copying result: OpaquePointer) {
        let rowCount = Int(PQntuples(result)), columnCount = Int(PQnfields(result))
        columns = (0..<columnCount).map { String(cString: PQfname(result, Int32($0))) }
        rows = (0..<rowCount).map { row in
            (0..<columnCount).map { column in
                PQgetisnull(result, Int32(row), Int32(column)) == 1 ? nil : String(cString: PQgetvalue(result, Int32(row), Int32(column)))
            }
        }
        affected = Int(String(cString: PQcmdTuples(result))) ?? 0
    }

    /// Rows made by hand (tests).
    public init(columns: [String], rows: [[String?]], affected: Int = 0) {
        self.columns = columns
        self.rows = rows
        self.affected = affected
    }

    public var count: Int { rows.count }
    public var isEmpty: Bool { rows.isEmpty }

    /// The text of a value; nil for NULL or a row/column out of range.
    public func string(_ row: Int, _ column: Int) -> String? {
        guard row < rows.count, column < columns.count else { return nil }
        return rows[row][column]
    }

    /// A value as an integer; nil for NULL or a non-integer.
    public func int(_ row: Int, _ column: Int) -> Int? { string(row, column).flatMap { Int($0) } }

    /// A boolean value (`t`/`f`); nil for NULL.
    public func bool(_ row: Int, _ column: Int) -> Bool? { string(row, column).map { $0 == "t" } }

    /// A `bytea` value (hex output, `\x…`); nil for NULL. Decoded by libpq: a log answer is megabytes.
    public func bytes(_ row: Int, _ column: Int) -> [UInt8]? {
        guard let text = string(row, column) else { return nil }
        var length = 0
        let decoded = text.withCString { PQunescapeBytea(UnsafeRawPointer($0).assumingMemoryBound(to: UInt8.self), &length) }
        guard let decoded else { return nil }
        defer { PQfreemem(decoded) }
        return Array(UnsafeBufferPointer(start: decoded, count: length))
    }
}
