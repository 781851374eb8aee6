import Foundation
import Testing
@testable import HeraldCore

@Suite struct ConfigParserTests {
    static let specExample = """
    state_dir: /var/lib/herald        # shared by both programs
    socket: /run/herald/fcgi.sock     # herald-fcgi listens here unless handed a socket
    url_prefix: /jobs
    submit_tokens_file: /etc/herald/tokens   # one token a line
    allow_anonymous_submit: false     # true only for demos: then no token is asked
    max_body_bytes: 65536
    max_streams: 20000                # open event streams per herald-fcgi
    heartbeat: 15s
    retry: 3s                         # sent to EventSource clients, with ±30% jitter
    workers: 4                        # jobs herald-runner work runs at once
    retention: 7d                     # herald-runner gc removes finished jobs older than this
    kinds:
      demo:
        builtin: demo                 # params: steps (1..10000, default 10), interval_ms (0..60000, default 1000), fail_at (optional step)
      report:
        command: [/usr/local/bin/make-report, --format, pdf]
        params:                       # allow-list: name -> regex the whole value must match
          month: '^[0-9]{4}-(0[1-9]|1[0-2])$'
        timeout: 30m
        concurrency: 2                # at most this many of this kind at once, across all runners
        retries: 1                    # extra attempts after a failure or a lost runner
    """

    /// The refusal for `yaml`, failing the test when it parses.
    func refusal(_ yaml: String, sourceLocation: SourceLocation = #_sourceLocation) -> ConfigError? {
        do {
            _ = try Config.parse(yaml: yaml)
            Issue.record("parsed, expected a refusal", sourceLocation: sourceLocation)
            return nil
        } catch {
            return error
        }
    }

    @Test func specExampleParsesWithEveryValue() throws {
        let c = try Config.parse(yaml: Self.specExample)
        #expect(c.stateDir == "/var/lib/herald")
        #expect(c.socket == "/run/herald/fcgi.sock")
        #expect(c.urlPrefix == "/jobs")
        #expect(c.submitTokensFile == "/etc/herald/tokens")
        #expect(c.allowAnonymousSubmit == false)
        #expect(c.maxBodyBytes == 65536)
        #expect(c.maxStreams == 20000)
        #expect(c.heartbeat.milliseconds == 15_000)
        #expect(c.retry.milliseconds == 3_000)
        #expect(c.workers == 4)
        #expect(c.retention.milliseconds == 7 * 86_400_000)
        #expect(Set(c.kinds.keys) == ["demo", "report"])

        let demo = try #require(c.kinds["demo"])
        #expect(demo.name == "demo")
        #expect(demo.executor == .demo)
        #expect(demo.params.isEmpty)
        #expect(demo.retries == 0)
        #expect(demo.timeout == nil && demo.concurrency == nil)

        let report = try #require(c.kinds["report"])
        #expect(report.name == "report")
        #expect(report.executor == .command(["/usr/local/bin/make-report", "--format", "pdf"]))
        #expect(report.params.keys.sorted() == ["month"])
        #expect(report.params["month"]?.source == "^[0-9]{4}-(0[1-9]|1[0-2])$")
        #expect(report.params["month"]?.matchesWhole("2026-10") == true)
        #expect(report.params["month"]?.matchesWhole("2026-13") == false)
        #expect(report.timeout == HeraldDuration(milliseconds: 1_800_000))
        #expect(report.concurrency == 2)
        #expect(report.retries == 1)
    }

    @Test func otherValues() throws {
        let c = try Config.parse(yaml: """
        state_dir: /srv/h
        url_prefix: /api/jobs
        submit_tokens_file: null
        allow_anonymous_submit: true
        heartbeat: 500ms
        retention: 0s
        kinds:
          export-csv_2:
            command:
              - /opt/bin/export
            retries: 0
        """)
        #expect(c.stateDir == "/srv/h")
        #expect(c.urlPrefix == "/api/jobs")
        #expect(c.submitTokensFile == nil)
        #expect(c.allowAnonymousSubmit)
        #expect(c.heartbeat.milliseconds == 500)
        #expect(c.retention.milliseconds == 0)
        #expect(c.kinds["export-csv_2"]?.executor == .command(["/opt/bin/export"]))
        // Left out: defaults.
        #expect(c.socket == "/run/herald/fcgi.sock")
        #expect(c.workers == 4)
    }

    @Test(arguments: ["", "\n", "# only a comment\n", "---\n"])
    func emptyFileGivesDefaults(text: String) throws {
        let c = try Config.parse(yaml: text)
        let d = Config()
        #expect(c.stateDir == d.stateDir && d.stateDir == "/var/lib/herald")
        #expect(c.socket == "/run/herald/fcgi.sock")
        #expect(c.urlPrefix == "/jobs")
        #expect(c.submitTokensFile == "/etc/herald/tokens")
        #expect(c.allowAnonymousSubmit == false)
        #expect(c.maxBodyBytes == 65536)
        #expect(c.maxStreams == 20000)
        #expect(c.heartbeat == .seconds(15))
        #expect(c.retry == .seconds(3))
        #expect(c.workers == 4)
        #expect(c.retention == .seconds(7 * 86400))
        #expect(c.kinds.isEmpty)
        #expect(Config.defaultPath == "/etc/herald/herald.yml")
    }

    @Test func databaseURLNamesThePostgreSQLStore() throws {
        let c = try Config.parse(yaml: "database_url: postgresql://herald@/herald?host=/run/postgresql\n")
        #expect(c.databaseURL == "postgresql://herald@/herald?host=/run/postgresql")
        #expect(try Config.parse(yaml: "").databaseURL == nil)
        #expect(try Config.parse(yaml: "state_dir: /srv/h\n").databaseURL == nil)
    }

    @Test func theEnvironmentVariableOverridesTheKeyAndAnEmptyOneIsUnset() throws {
        let variable = Config.databaseURLVariable
        #expect(variable == "HERALD_DATABASE_URL")
        let fromFile = "database_url: host=a dbname=herald\n"
        #expect(try Config.parse(yaml: fromFile, environment: [variable: "host=b dbname=herald"]).databaseURL == "host=b dbname=herald")
        #expect(try Config.parse(yaml: "", environment: [variable: "host=b"]).databaseURL == "host=b")
        #expect(try Config.parse(yaml: fromFile, environment: [variable: ""]).databaseURL == "host=a dbname=herald")
        #expect(try Config.parse(yaml: "", environment: ["PGHOST": "x"]).databaseURL == nil)
    }

    @Test func stateDirAndDatabaseURLTogetherAreRefusedNamingBoth() throws {
        let both = try #require(refusal("state_dir: /srv/h\ndatabase_url: host=/run/postgresql\n"))
        #expect(both.key == "state_dir" && both.line == 1)
        #expect(both.message.contains("database_url (line 2)"))
        // The variable counts as the key: a file naming a state directory is not quietly switched to a database.
        do {
            _ = try Config.parse(yaml: "state_dir: /srv/h\n", environment: [Config.databaseURLVariable: "host=db"])
            Issue.record("parsed, expected a refusal")
        } catch {
            #expect(error.key == "state_dir")
            #expect(error.message.contains("database_url (from HERALD_DATABASE_URL)"))
        }
    }

    @Test(arguments: ["database_url: \"\"\n", "database_url: [a]\n", "database_url:\n"])
    func anEmptyOrNonStringDatabaseURLIsRefused(yaml: String) throws {
        let error = try #require(refusal(yaml))
        #expect(error.key == "database_url" && error.line == 1)
    }

    @Test func theShippedExampleParses() throws {
        // config/herald.yml is the commented SPEC example; it must stay a valid file.
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../config/herald.yml").standardized.path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let c = try Config.parse(yaml: text)
        #expect(c.kinds["demo"]?.executor == .demo)
        #expect(c.kinds["report"]?.retries == 1)
    }

    // MARK: Refusals, each with its key and 1-based line

    @Test(arguments: [
        // (yaml, key, line)
        ("state_dir: /x\nbogus: 1\n", "bogus", 2),
        ("kinds:\n  demo:\n    builtin: demo\n    colour: red\n", "kinds.demo.colour", 4),
        ("workers: four\n", "workers", 1),
        ("state_dir: /x\nworkers: \"4\"\n", "workers", 2),
        ("workers: 4.5\n", "workers", 1),
        ("workers: 0\n", "workers", 1),
        ("workers: [1]\n", "workers", 1),
        ("max_streams: -1\n", "max_streams", 1),
        ("max_body_bytes: 1e6\n", "max_body_bytes", 1),
        ("allow_anonymous_submit: yes\n", "allow_anonymous_submit", 1),
        ("\nallow_anonymous_submit: 1\n", "allow_anonymous_submit", 2),
        ("heartbeat: 15\n", "heartbeat", 1),
        ("heartbeat: 1.5s\n", "heartbeat", 1),
        ("a: 1\n", "a", 1),
        ("retry: fast\n", "retry", 1),
        ("retention: -1d\n", "retention", 1),
        ("heartbeat: 10ms\n", "heartbeat", 1),
        ("retry: 99999999999d\n", "retry", 1),  // would overflow the jittered retry
        ("retention: 3661d\n", "retention", 1),
        ("state_dir: var/lib/herald\n", "state_dir", 1),
        ("socket: \"\"\n", "socket", 1),
        ("state_dir: {a: 1}\n", "state_dir", 1),
        ("url_prefix: jobs\n", "url_prefix", 1),
        ("url_prefix: /jobs/\n", "url_prefix", 1),
        ("kinds:\n  report:\n    command: [/bin/r]\n    timeout: 30\n", "kinds.report.timeout", 4),
        ("kinds:\n  report:\n    command: [/bin/r]\n    retries: lots\n", "kinds.report.retries", 4),
        ("kinds:\n  report:\n    command: [/bin/r]\n    concurrency: 0\n", "kinds.report.concurrency", 4),
        ("kinds:\n  report:\n    command: [bin/make-report]\n", "kinds.report.command", 3),
        ("kinds:\n  report:\n    command: make-report --pdf\n", "kinds.report.command", 3),
        ("kinds:\n  report:\n    command: []\n", "kinds.report.command", 3),
        ("kinds:\n  report:\n    builtin: shell\n", "kinds.report.builtin", 3),
        ("kinds:\n  report:\n    command: [/bin/r]\n    params:\n      month: '[0-9'\n", "kinds.report.params.month", 5),
        ("kinds:\n  report:\n    command: [/bin/r]\n    params:\n      month: '(unclosed'\n", "kinds.report.params.month", 5),
        ("kinds:\n  report:\n    command: [/bin/r]\n    params:\n      9lives: 'x'\n", "kinds.report.params.9lives", 5),
        ("kinds:\n  report:\n    command: [/bin/r]\n    params:\n      month: [a]\n", "kinds.report.params.month", 5),
        ("kinds:\n  bad name:\n    builtin: demo\n", "kinds.bad name", 2),
        ("kinds: [demo]\n", "kinds", 1),
        ("kinds:\n  demo:\n    builtin: demo\n    params:\n      steps: '[0-9]+'\n", "kinds.demo.params", 4),
    ])
    func refusedWithKeyAndLine(yaml: String, key: String, line: Int) throws {
        let error = try #require(refusal(yaml))
        #expect(error.key == key, "\(error)")
        #expect(error.line == line, "\(error)")
        #expect(!error.message.isEmpty)
        #expect(error.description.contains("line \(line)"))
        #expect(error.description.contains(key))
    }

    @Test(arguments: [
        ("kinds:\n  report:\n    timeout: 30m\n", "kinds.report", 2),
        ("state_dir: /x\nkinds:\n  report:\n\n    retries: 1\n    timeout: 30m\n", "kinds.report", 3),
        ("kinds:\n  report: {retries: 1}\n", "kinds.report", 2),
    ])
    func kindWithoutCommandOrBuiltin(yaml: String, key: String, line: Int) throws {
        let error = try #require(refusal(yaml))
        #expect(error.key == key, "\(error)")
        #expect(error.line == line, "\(error)")
        #expect(error.message.contains("command") && error.message.contains("builtin"))
    }

    @Test func duplicateKeyIsRefusedWithNameAndLine() throws {
        let error = try #require(refusal("state_dir: /a\nworkers: 2\nstate_dir: /b\n"))
        #expect(error.key == "state_dir", "\(error)")
        #expect(error.line == 1 || error.line == 3, "\(error)")
        let nested = try #require(refusal("kinds:\n  r:\n    command: [/bin/r]\n    retries: 1\n    retries: 2\n"))
        #expect(nested.key.hasSuffix("retries"), "\(nested)")
        #expect(nested.line == 4 || nested.line == 5, "\(nested)")
    }

    @Test func invalidYAMLIsRefusedWithALine() throws {
        let error = try #require(refusal("state_dir: /x\nworkers: [1, 2\nretry: 3s\n"))
        #expect(error.line != nil)
        #expect(error.message.contains("YAML"))
        let tabs = try #require(refusal("kinds:\n\tdemo: x\n"))
        #expect(tabs.line == 2, "\(tabs)")
    }

    @Test func topLevelMustBeAMapping() throws {
        let error = try #require(refusal("- a\n- b\n"))
        #expect(error.line == 1)
        #expect(error.message.contains("mapping"))
    }

    @Test func descriptionNamesKeyAndLine() {
        let e = ConfigError(key: "kinds.report.timeout", line: 19, message: "bad")
        #expect(e.description == "line 19: kinds.report.timeout: bad")
        #expect(ConfigError(key: "", line: nil, message: "oops").description == "oops")
    }
}

@Suite struct ReadTokenConfigTests {
    @Test func oneSecretFileOrTwoForARotation() throws {
        #expect(try Config.parse(yaml: "read_token_secret_file: /etc/herald/read.key\n").readTokenSecretFiles == ["/etc/herald/read.key"])
        let two = try Config.parse(yaml: "read_token_secret_file: [/etc/herald/new.key, /etc/herald/old.key]\nrequire_read_token: true\n")
        #expect(two.readTokenSecretFiles == ["/etc/herald/new.key", "/etc/herald/old.key"] && two.requireReadToken)
        #expect(try Config.parse(yaml: "").requireReadToken == false)
    }

    @Test(arguments: [
        ("read_token_secret_file: relative.key\n", "read_token_secret_file", 1),
        ("read_token_secret_file: [/a, /b, /c]\n", "read_token_secret_file", 1),
        ("read_token_secret_file: []\n", "read_token_secret_file", 1),
        ("require_read_token: yes\n", "require_read_token", 1),
        ("heartbeat: 15s\nrequire_read_token: true\n", "require_read_token", 2),
    ])
    func refusedWithKeyAndLine(yaml: String, key: String, line: Int) {
        do {
            _ = try Config.parse(yaml: yaml)
            Issue.record("accepted: \(yaml)")
        } catch {
            #expect(error.key == key && error.line == line, "\(error)")
        }
    }
}
