import Glibc
import HeraldPostgres
import HeraldPostgresTesting
import Testing

/// The libpq wrapper against a real server (a private cluster).
@Suite struct PostgresConnectionTests {
    @Test func settingsAddKeepalivesOnlyWhereTheConninfoSetsNone() throws {
        let uri = try PostgresConnection.settings("postgresql://herald@db.example/herald?keepalives_idle=30", applicationName: "herald-fcgi")
        let values = Dictionary(uri, uniquingKeysWith: { first, _ in first })
        #expect(values["keepalives_idle"] == "30")
        #expect(values["keepalives"] == "1")
        #expect(values["tcp_user_timeout"] == "15000")
        #expect(values["host"] == "db.example")
        #expect(values["application_name"] == "herald-fcgi")
        let pairs = Dictionary(try PostgresConnection.settings("host=/run/postgresql dbname=herald application_name=mine", applicationName: "herald"),
                               uniquingKeysWith: { first, _ in first })
        #expect(pairs["application_name"] == "mine")
        #expect(pairs["connect_timeout"] == "10")
    }

    @Test func aConninfoThatDoesNotParseIsABadConninfo() {
        #expect {
            try PostgresConnection.settings("host=x nonsense_key=1", applicationName: "herald")
        } throws: { ($0 as? PostgresError)?.kind == .badConninfo && "\($0)".contains("nonsense_key") }
    }

    @Test func anUnreachableServerIsAConnectionError() throws {
        let empty = "/tmp/herald-pg-none-\(getpid())"
        #expect {
            try PostgresConnection.connect("host=\(empty) dbname=x user=herald")
        } throws: { ($0 as? PostgresError)?.kind == .connection }
    }

    @Test func executeTakesTextBytesAndNullAndReadsTypedValues() throws {
        let connection = try PostgresConnection.connect(try PrivateCluster.require().createDatabase())
        let bytes: [UInt8] = [0, 1, 2, 0xff, 10, 13, 0x5c]
        let rows = try connection.execute("SELECT $1::text, $2::bytea, $3::text IS NULL, 42::bigint, true, NULL::text",
                                          [.text("héllo \"x\""), .bytes(bytes), .null])
        #expect(rows.count == 1)
        #expect(rows.string(0, 0) == "héllo \"x\"")
        #expect(rows.bytes(0, 1) == bytes)
        #expect(rows.bool(0, 2) == true)
        #expect(rows.int(0, 3) == 42)
        #expect(rows.bool(0, 4) == true)
        #expect(rows.string(0, 5) == nil)
        let array = try connection.execute("SELECT cardinality($1::text[]), ($1::text[])[2]", [.textArray(["a", "b\"c\\", "d,e"])])
        #expect(array.int(0, 0) == 3)
        #expect(array.string(0, 1) == "b\"c\\")
    }

    @Test func aFailedStatementCarriesItsSQLStateAndLeavesTheConnectionUsable() throws {
        let connection = try PostgresConnection.connect(try PrivateCluster.require().createDatabase())
        #expect {
            try connection.execute("SELECT 1 / $1::int", [.int(0)])
        } throws: { error in
            guard let error = error as? PostgresError else { return false }
            return error.sqlState == "22012" && error.kind == .query && error.description.contains("division by zero")
        }
        #expect(connection.isOK)
        #expect(try connection.execute("SELECT 1").int(0, 0) == 1)
        #expect(try connection.execute("CREATE TABLE t (a int); INSERT INTO t VALUES (1), (2)").count == 0)
        #expect(try connection.execute("UPDATE t SET a = a + 1").affected == 2)
    }

    @Test func aConnectionWhoseServerEndedItSaysSoAndResetsBack() throws {
        let cluster = try PrivateCluster.require()
        let info = try cluster.createDatabase()
        let connection = try PostgresConnection.connect(info)
        let killer = try PostgresConnection.connect(info)
        try killer.execute("SELECT pg_terminate_backend($1)", [.int(connection.serverPID)])
        #expect { try connection.execute("SELECT 1") } throws: { ($0 as? PostgresError)?.kind == .connection }
        #expect(!connection.isOK)
        #expect(connection.reset())
        #expect(try connection.execute("SELECT 2").int(0, 0) == 2)
    }

    @Test func listenDeliversNotificationsThroughTheSocket() throws {
        let info = try PrivateCluster.require().createDatabase()
        let listener = try PostgresConnection.connect(info)
        try listener.execute("LISTEN herald")
        let sender = try PostgresConnection.connect(info)
        try sender.execute("BEGIN")
        try sender.execute("SELECT pg_notify('herald', $1)", [.text("j abc")])
        try sender.execute("SELECT pg_notify('other', 'x')")
        #expect(!waitReadable(listener.socket, milliseconds: 200))  // nothing before the commit
        try sender.execute("COMMIT")
        #expect(waitReadable(listener.socket, milliseconds: 5000))
        try listener.consumeInput()
        let received = listener.notifications()
        #expect(received.map(\.payload) == ["j abc"])
        #expect(received.first?.channel == "herald")
        #expect(received.first?.serverPID == sender.serverPID)
        #expect(!listener.isInTransaction)
    }

    private func waitReadable(_ fd: Int32, milliseconds: Int32) -> Bool {
        var poll = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return Glibc.poll(&poll, 1, milliseconds) == 1
    }
}
