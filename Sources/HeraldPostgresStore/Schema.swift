// Herald's schema in PostgreSQL, and the migrations that make it (docs/PROTOCOL.md, "The PostgreSQL store").
//
// Everything lives in the schema `herald`, owned by the role that runs `herald-runner migrate`: the
// runner's role, which alone writes job state. The web role gets SELECT on what it reads and
// EXECUTE on three SECURITY DEFINER functions (submit, idempotent submit, request cancellation),
// and nothing else: it cannot UPDATE or DELETE a job, as herald-web cannot write jobs/ in the
// state directory.
//
// Migrations run in one transaction under a transaction-scoped advisory lock, so any number of
// hosts may run `migrate` at once: one applies the steps, the others wait and find nothing to do.
import HeraldPostgres

/// The schema's versions and how to reach the current one.
public enum Schema {
    /// The version this build reads and writes; a database at another version is refused.
    public static let version = 1

    /// Advisory lock keys (two int4 keys; the first is Herald's namespace, "HRL" then a number).
    enum LockSpace: Int32 {
        case migrate = 0x4852_4C00
        case runner = 0x4852_4C01
        case kind = 0x4852_4C02
    }

    /// The NOTIFY channel of what runners act on (submissions, cancel requests); payloads are a letter
    /// and ids, never jobs (docs/PROTOCOL.md).
    static let channel = "herald"
    /// The channel of status and log changes, which only web nodes listen to: a runner's LISTEN
    /// connection is not woken by the thousands of progress and log writes a second.
    static let changesChannel = "herald_jobs"

    /// Step N takes the schema from version N-1 to N.
    static let migrations: [String] = [
        """
        CREATE TABLE herald.jobs (
            id text PRIMARY KEY,
            kind text NOT NULL,
            state text NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'canceled')),
            owner text,
            seq bigint NOT NULL,
            finished_ms bigint,
            job json NOT NULL,
            claim bigint,
            runner integer,
            process_group integer,
            boot_id text,
            cancel_requested boolean NOT NULL DEFAULT false,
            log_size bigint NOT NULL DEFAULT 0,
            CHECK ((state = 'running') = (claim IS NOT NULL))
        );
        CREATE INDEX jobs_queued ON herald.jobs (id) WHERE state = 'queued';
        CREATE INDEX jobs_running ON herald.jobs (kind, runner) WHERE state = 'running';
        CREATE INDEX jobs_finished ON herald.jobs (finished_ms, id) WHERE finished_ms IS NOT NULL;
        CREATE INDEX jobs_state ON herald.jobs (state, id);
        CREATE INDEX jobs_kind ON herald.jobs (kind, id);
        CREATE INDEX jobs_owner ON herald.jobs (owner, id) WHERE owner IS NOT NULL;
        CREATE INDEX jobs_cancel ON herald.jobs (id) WHERE cancel_requested;

        CREATE TABLE herald.job_logs (
            job_id text NOT NULL REFERENCES herald.jobs (id) ON DELETE CASCADE,
            start bigint NOT NULL,
            data bytea NOT NULL,
            PRIMARY KEY (job_id, start)
        );

        CREATE TABLE herald.idempotency_keys (
            key_hash text PRIMARY KEY,
            body_hash text NOT NULL,
            job_id text NOT NULL,
            created timestamptz NOT NULL DEFAULT now()
        );

        CREATE SEQUENCE herald.claims;
        CREATE SEQUENCE herald.runner_ids AS integer CYCLE;

        -- Runner processes: a runner is alive while the session advisory lock (runner, id) is held;
        -- seen_free_at is when a recovery pass first found it free (the grace before its jobs are taken).
        CREATE TABLE herald.runners (
            id integer PRIMARY KEY,
            host text NOT NULL,
            pid integer NOT NULL,
            started timestamptz NOT NULL DEFAULT now(),
            seen_free_at timestamptz
        );

        -- A submission as the web side makes it: only a fresh job passes (what ingest checks in the state directory).
        CREATE FUNCTION herald.submit(p_job json) RETURNS void
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
        BEGIN
            IF coalesce(p_job->>'id', '') !~ '^[0-9a-hjkmnp-tv-z]{26}$' OR coalesce(p_job->>'kind', '') = ''
               OR p_job->>'state' IS DISTINCT FROM 'queued' OR p_job->>'seq' IS DISTINCT FROM '1'
               OR p_job->>'attempt' IS DISTINCT FROM '1' OR p_job->>'started_at' IS NOT NULL
               OR p_job->>'finished_at' IS NOT NULL OR p_job->>'exit_code' IS NOT NULL
               OR p_job->>'error' IS NOT NULL OR p_job->>'result' IS NOT NULL THEN
                RAISE EXCEPTION 'not a fresh job' USING ERRCODE = 'check_violation';
            END IF;
            INSERT INTO herald.jobs (id, kind, state, owner, seq, job)
                VALUES (p_job->>'id', p_job->>'kind', 'queued', p_job->>'owner', 1, p_job);
            PERFORM pg_notify('herald', 's ' || (p_job->>'id'));
        END $$;

        -- Submit under an Idempotency-Key (SPEC §9): the key's row decides, so of concurrent repeats exactly one creates.
        CREATE FUNCTION herald.submit_idempotent(p_key_hash text, p_body_hash text, p_job json, p_lifetime_ms bigint,
                                                 OUT r_outcome text, OUT r_job json)
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
        DECLARE
            k herald.idempotency_keys;
        BEGIN
            INSERT INTO herald.idempotency_keys (key_hash, body_hash, job_id)
                VALUES (p_key_hash, p_body_hash, p_job->>'id') ON CONFLICT (key_hash) DO NOTHING;
            IF FOUND THEN
                PERFORM herald.submit(p_job);
                r_outcome := 'created'; r_job := p_job; RETURN;
            END IF;
            SELECT * INTO k FROM herald.idempotency_keys WHERE key_hash = p_key_hash FOR UPDATE;
            SELECT j.job INTO r_job FROM herald.jobs j WHERE j.id = k.job_id;
            -- Past its 24 h, or its job removed: the key is free again.
            IF k.created < now() - p_lifetime_ms * interval '1 millisecond' OR r_job IS NULL THEN
                UPDATE herald.idempotency_keys SET body_hash = p_body_hash, job_id = p_job->>'id', created = now()
                    WHERE key_hash = p_key_hash;
                PERFORM herald.submit(p_job);
                r_outcome := 'created'; r_job := p_job; RETURN;
            END IF;
            IF k.body_hash <> p_body_hash THEN
                r_outcome := 'reused'; r_job := NULL; RETURN;
            END IF;
            r_outcome := 'repeated';
        END $$;

        -- A cancellation request: the flag only; the runner decides what it means for the job.
        CREATE FUNCTION herald.request_cancel(p_id text) RETURNS void
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
        BEGIN
            UPDATE herald.jobs SET cancel_requested = true
                WHERE id = p_id AND state IN ('queued', 'running') AND NOT cancel_requested;
            IF FOUND THEN PERFORM pg_notify('herald', 'c ' || p_id); END IF;
        END $$;

        REVOKE ALL ON FUNCTION herald.submit(json), herald.submit_idempotent(text, text, json, bigint),
            herald.request_cancel(text) FROM PUBLIC;
        """,
    ]

    /// What the web role is granted: read, submit, request cancellation; nothing that writes job state.
    static func webGrants(_ role: String) -> String {
        let r = quotedIdentifier(role)
        return """
            GRANT USAGE ON SCHEMA herald TO \(r);
            GRANT SELECT ON herald.jobs, herald.job_logs, herald.schema_version TO \(r);
            GRANT EXECUTE ON FUNCTION herald.submit(json), herald.submit_idempotent(text, text, json, bigint),
                herald.request_cancel(text) TO \(r);
            """
    }

    /// `name` as a SQL identifier, quoted.
    static func quotedIdentifier(_ name: String) -> String {
        "\"" + name.split(separator: "\"", omittingEmptySubsequences: false).joined(separator: "\"\"") + "\""
    }

    /// What `migrate` did.
    public struct MigrationReport: Sendable, Equatable {
        public let from: Int
        public let to: Int
    }

    /// Creates or upgrades the schema to `version` and grants `webRole` its rights; safe to run from
    /// several hosts at once (one transaction under an advisory lock). A database at a newer version
    /// than this build knows is refused (`newerSchema`), and nothing is changed.
    public static func migrate(_ connection: PostgresConnection, webRole: String?) throws(MigrationError) -> MigrationReport {
        do {
            try connection.execute("BEGIN")
            do {
                try connection.execute("SELECT pg_advisory_xact_lock($1, 0)", [.int(LockSpace.migrate.rawValue)])
                try connection.execute("""
                    CREATE SCHEMA IF NOT EXISTS herald;
                    CREATE TABLE IF NOT EXISTS herald.schema_version (version integer NOT NULL);
                    """)
                let rows = try connection.execute("SELECT version FROM herald.schema_version")
                let from = rows.int(0, 0) ?? 0
                if rows.isEmpty { try connection.execute("INSERT INTO herald.schema_version VALUES (0)") }
                guard from <= version else { throw MigrationError.newerSchema(found: from, known: version) }
                for step in from..<version { try connection.execute(migrations[step]) }
                try connection.execute("UPDATE herald.schema_version SET version = $1", [.int(version)])
                if let webRole {
                    let exists = try connection.execute("SELECT 1 FROM pg_roles WHERE rolname = $1", [.text(webRole)])
                    guard !exists.isEmpty else { throw MigrationError.noSuchRole(webRole) }
                    try connection.execute(webGrants(webRole))
                }
                try connection.execute("COMMIT")
                return MigrationReport(from: from, to: version)
            } catch {
                _ = try? connection.execute("ROLLBACK")
                throw error
            }
        } catch let error as MigrationError {
            throw error
        } catch let error as PostgresError {
            throw .postgres(error)
        } catch {
            preconditionFailure("unexpected \(error)")
        }
    }

    /// `migrate` on a connection of its own to `conninfo`.
    public static func migrate(conninfo: String, webRole: String?, applicationName: String) throws(MigrationError) -> MigrationReport {
        let connection: PostgresConnection
        do { connection = try PostgresConnection.connect(conninfo, applicationName: applicationName) } catch { throw .postgres(error) }
        defer { connection.close() }
        return try migrate(connection, webRole: webRole)
    }

    /// Nil when the database's schema is this build's version; else why the program must not start.
    public static func mismatch(_ connection: PostgresConnection) throws(PostgresError) -> String? {
        let rows: PostgresRows
        do { rows = try connection.execute("SELECT version FROM herald.schema_version") } catch {
            if error.isMissingSchema { return "the database has no Herald schema yet: run `herald-runner migrate`" }
            throw error
        }
        let found = rows.int(0, 0) ?? 0
        if found == version { return nil }
        return found < version
            ? "the database's Herald schema is version \(found), this program needs \(version): run `herald-runner migrate`"
            : "the database's Herald schema is version \(found), newer than this program's \(version): upgrade Herald (then `herald-runner migrate`)"
    }
}

/// Why `migrate` failed.
public enum MigrationError: Error, Sendable, CustomStringConvertible {
    /// The database is at a version this build does not know.
    case newerSchema(found: Int, known: Int)
    /// `--web-role` names no role.
    case noSuchRole(String)
    /// PostgreSQL refused or could not be reached.
    case postgres(PostgresError)

    /// Whether PostgreSQL could not be reached (exit 69) rather than refused what was asked (78).
    public var isUnavailable: Bool {
        if case let .postgres(error) = self { return error.kind == .connection }
        return false
    }

    public var description: String {
        switch self {
        case let .newerSchema(found, known):
            return "the database's Herald schema is version \(found), newer than this herald-runner's \(known): upgrade Herald"
        case let .noSuchRole(role):
            return "--web-role: no role named '\(role)' (create it first: CREATE ROLE \(Schema.quotedIdentifier(role)) LOGIN)"
        case let .postgres(error):
            return "PostgreSQL: \(error)"
        }
    }
}
