import Foundation
import HeraldPostgres
@testable import HeraldPostgresStore
import HeraldPostgresTesting
import HeraldStore
import Testing

/// `herald-runner migrate`'s work: versioned, idempotent, safe from several sessions at once.
@Suite struct MigrationTests {
    @Test func migrateCreatesTheSchemaThenFindsNothingToDo() throws {
        let fixture = try PostgresFixture(migrate: false)
        let connection = try fixture.connect()
        #expect(try Schema.migrate(connection, webRole: nil) == Schema.MigrationReport(from: 0, to: Schema.version))
        #expect(try Schema.migrate(connection, webRole: nil) == Schema.MigrationReport(from: Schema.version, to: Schema.version))
        #expect(try connection.execute("SELECT count(*) FROM herald.schema_version").int(0, 0) == 1)
        #expect(try Schema.mismatch(connection) == nil)
    }

    @Test func migratesFromSeveralSessionsAtOnceApplyTheStepsOnce() throws {
        let fixture = try PostgresFixture(migrate: false)
        let connections = try (0..<4).map { _ in try fixture.connect() }
        let reports = Mutex4()
        DispatchQueue.concurrentPerform(iterations: connections.count) { k in
            reports.append(Result { try Schema.migrate(connections[k], webRole: nil) })
        }
        let results = reports.values.map { try? $0.get() }
        #expect(results.allSatisfy { $0 != nil })
        #expect(results.filter { $0?.from == 0 }.count == 1)
        #expect(try fixture.connect().execute("SELECT version FROM herald.schema_version").int(0, 0) == Schema.version)
    }

    @Test func aStoreRefusesADatabaseWithoutTheSchemaOrAtAnotherVersionNamingMigrate() throws {
        let fixture = try PostgresFixture(migrate: false)
        #expect { try fixture.store() } throws: { error in
            guard case let .unsuitable(why)? = error as? StoreError else { return false }
            return why.contains("herald-runner migrate")
        }
        _ = try Schema.migrate(try fixture.connect(), webRole: nil)
        try fixture.connect().execute("UPDATE herald.schema_version SET version = 0")
        #expect { try fixture.store() } throws: { error in
            guard case let .unsuitable(why)? = error as? StoreError else { return false }
            return why.contains("version 0") && why.contains("herald-runner migrate")
        }
    }

    @Test func aStoreOpenedWaitingForAnAbsentDatabaseChecksTheSchemaOnceItIsBack() throws {
        let fixture = try PostgresFixture()
        try fixture.connect().execute("UPDATE herald.schema_version SET version = 0")
        // PostgreSQL "away": a socket directory without its socket, until a link to the cluster's is made.
        var template = Array("/tmp/herald-away-XXXXXX".utf8CString)
        let away = String(cString: try #require(mkdtemp(&template)))
        defer { _ = try? FileManager.default.removeItem(atPath: away) }
        let conninfo = fixture.conninfo.replacingOccurrences(of: "host=\(fixture.cluster.directory)", with: "host=\(away)")
        #expect(conninfo != fixture.conninfo)
        #expect(throws: StoreError.self) { try PostgresStore(conninfo: conninfo, applicationName: "t") }
        let store = try PostgresStore(conninfo: conninfo, applicationName: "t", waitingForDatabase: true)
        #expect(store.unreachableAtStart?.hasPrefix("PostgreSQL: ") == true)
        let job = fixture.newJob()
        #expect { try store.submit(job) } throws: { error in
            guard case .unavailable? = error as? StoreError else { return false }
            return true
        }
        try FileManager.default.createSymbolicLink(atPath: away + "/.s.PGSQL.5432", withDestinationPath: fixture.cluster.directory + "/.s.PGSQL.5432")
        #expect { try store.submit(job) } throws: { error in
            guard case let .unsuitable(why)? = error as? StoreError else { return false }
            return why.contains("version 0") && why.contains("herald-runner migrate")
        }
        #expect(try fixture.connect().execute("SELECT count(*) FROM herald.jobs").int(0, 0) == 0)
        try fixture.connect().execute("UPDATE herald.schema_version SET version = \(Schema.version)")
        try store.submit(job)
        #expect(try store.job(job.id)?.state == .queued)
    }

    @Test func migrateRefusesANewerSchemaAndChangesNothing() throws {
        let fixture = try PostgresFixture()
        try fixture.connect().execute("UPDATE herald.schema_version SET version = 99")
        #expect { try Schema.migrate(try fixture.connect(), webRole: nil) } throws: { error in
            guard case let .newerSchema(found, known)? = error as? MigrationError else { return false }
            return found == 99 && known == Schema.version
        }
        #expect(try fixture.connect().execute("SELECT version FROM herald.schema_version").int(0, 0) == 99)
        #expect { try fixture.store() } throws: { "\($0)".contains("newer") }
    }

    @Test func anUnknownWebRoleIsNamedAndNothingIsGranted() throws {
        let fixture = try PostgresFixture(migrate: false)
        #expect { try Schema.migrate(try fixture.connect(), webRole: "nobody_here") } throws: { "\($0)".contains("nobody_here") }
        #expect(throws: PostgresError.self) { try fixture.connect().execute("SELECT 1 FROM herald.jobs") }
    }

    @Test func theUnreachableAndTheMisconfiguredAreTold() throws {
        #expect { try PostgresStore(conninfo: "host=/tmp/herald-pg-absent dbname=x", applicationName: "t") } throws: { error in
            guard case let .unavailable(why)? = error as? StoreError else { return false }
            return why.hasPrefix("PostgreSQL: ")
        }
        #expect { try PostgresStore(conninfo: "postgresql://x/y?bogus=1", applicationName: "t") } throws: { error in
            guard case .unsuitable? = error as? StoreError else { return false }
            return true
        }
    }
}

/// Results gathered from several threads.
final class Mutex4: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var values: [Result<Schema.MigrationReport, Error>] = []
    func append(_ value: Result<Schema.MigrationReport, Error>) { lock.withLock { values.append(value) } }
}
