// herald-fcgi: wiring only. Parse arguments, load the configuration, open the store,
// start the stream hub and the accepting threads, and drain on SIGTERM.
import ArgumentParser
import Foundation
import Glibc
import HeraldAPI
import HeraldCore
import HeraldFastCGI
import HeraldPOSIX
import HeraldStore
import HeraldStores
import HeraldStreams
import HeraldTokens
import Synchronization

let log = Log(program: "herald-fcgi")

struct HeraldFCGI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "herald-fcgi",
        abstract: "The Herald FastCGI responder: the job API and live event streams, behind nginx.",
        version: "0.1.0")

    @Option(help: "The configuration file (default: $HERALD_CONFIG or /etc/herald/herald.yml).")
    var config: String?

    @Option(help: "Listen on this unix socket path (default: the configuration's 'socket'), unless a socket is handed over on fd 0 or by systemd.")
    var socket: String?

    @Flag(help: "Check the configuration and exit: 0 if good, 78 if not.")
    var checkConfig = false

    /// Accepting threads: streams park in the hub, so only plain requests hold one.
    static let acceptingThreads = 8
    /// Descriptors kept back from `max_streams` for everything that is not a parked stream.
    static let reservedFiles = 256

    func run() throws {
        var config: Config
        do { config = try ConfigFile.load(explicit: self.config) } catch {
            log(.error, "bad configuration: \(error)")
            throw ExitCode(78)
        }
        if checkConfig {
            print("configuration OK: \(ConfigFile.path(explicit: self.config))")
            return
        }
        config.maxStreams = streamLimit(config.maxStreams)
        let auth = try loadAuth(config)
        let readTokens = try loadReadTokens(config)
        let choice: StoreChoice
        // Creating what is missing may be the runner's right alone: then only check that it is there.
        // An unreachable PostgreSQL is waited for (SPEC §8): requests answer 503 until it is back.
        do {
            choice = try (try? StoreChoice.open(config, create: true, waitingForDatabase: true))
                ?? StoreChoice.open(config, create: false, waitingForDatabase: true)
        } catch {
            log(.error, "\(error)")
            if case StoreError.unsuitable = error { throw ExitCode(78) }  // only another configuration helps
            throw ExitCode(69)
        }
        let store: any JobStore = choice.store
        if let warning = choice.warning { log(.warning, warning) }
        if let why = choice.unreachable { log(.warning, "\(choice.description) unreachable: serving 503 until it is back (\(why))") }
        let source = ListenSource.detect(socketPath: socket ?? config.socket)
        let server: FastCGIServer
        do { server = try FastCGIServer(source: source) } catch {
            log(.error, "cannot listen: \(error)")
            throw ExitCode(69)
        }
        // After FCGX_Init, which installs its own SIGTERM handler: block the signals in every
        // thread and take them with sigwait below instead.
        Signals.block([SIGTERM, SIGINT, SIGHUP])
        Signals.ignorePipe()

        let hub = try StreamHub(store: store, urlPrefix: config.urlPrefix, heartbeat: config.heartbeat, log: { log(.warning, $0) })
        let api = HeraldAPI(config: config, store: store, auth: auth, readTokens: readTokens, metrics: hub.metrics, log: { log(.error, $0) })
        hub.start()
        server.start(log: { log(.error, $0) })
        let threadsAccepting = Atomic<Int>(HeraldFCGI.acceptingThreads)
        let threads = (0..<HeraldFCGI.acceptingThreads).map { n in
            let thread = Thread {
                while let request = server.accept() { serve(request, api: api, hub: hub) }
                threadsAccepting.subtract(1, ordering: .sequentiallyConsistent)
            }
            thread.name = "herald-accept-\(n)"
            return thread
        }
        threads.forEach { $0.start() }
        log(.info, "listening (\(describe(source))), \(choice.description), \(config.kinds.count) kinds")

        let signal = Signals.wait([SIGTERM, SIGINT])
        log(.info, "signal \(signal): draining \(hub.metrics.openStreams.load(ordering: .relaxed)) streams")
        server.stopAccepting()
        // A short jittered retry: browsers come back to the next process within about a second.
        hub.drain(retry: { 500 + Int(RandomSource.bytes(1)[0]) * 4 })
        // Requests accepted before the stop are still answered; a stream among them is ended on arrival
        // in the hub with the same short retry. Then every stream's last bytes must be out. SPEC: exit within 5 s.
        let deadline = Clock.monotonicMilliseconds() + 4_000
        while threadsAccepting.load(ordering: .sequentiallyConsistent) > 0, Clock.monotonicMilliseconds() < deadline {
            Clock.sleep(milliseconds: 10)
        }
        hub.waitUntilClosed(deadline: deadline)
        log(.info, "stopped")
        Glibc.exit(0)
    }

    /// `max_streams`, lowered to what the open-file limit (first raised to its hard limit) can hold.
    func streamLimit(_ configured: Int) -> Int {
        guard let files = try? ResourceLimits.raiseOpenFiles() else { return configured }
        // A stream holds one descriptor; the rest is for the listener, connections being accepted and the store.
        let fits = max(1, files - HeraldFCGI.reservedFiles)
        if configured > fits {
            log(.warning, "max_streams \(configured) lowered to \(fits): the open-file limit is \(files) (raise LimitNOFILE)")
        }
        return min(configured, fits)
    }

    /// The read-token verifier, or nil when no secret is configured; 78 when a secret file is missing or short.
    func loadReadTokens(_ config: Config) throws -> ReadTokenVerifier? {
        guard !config.readTokenSecretFiles.isEmpty else { return nil }
        switch ReadTokenSecret.load(config.readTokenSecretFiles) {
        case let .success(secrets): return ReadTokenVerifier(secrets: secrets)
        case let .failure(error):
            log(.error, "bad configuration: \(error)")
            throw ExitCode(78)
        }
    }

    func loadAuth(_ config: Config) throws -> SubmitterAuth {
        guard !config.allowAnonymousSubmit else { return SubmitterAuth(tokensFileText: nil, anonymous: true) }
        guard let path = config.submitTokensFile else {
            log(.error, "bad configuration: submit_tokens_file is not set and allow_anonymous_submit is false: nobody could submit")
            throw ExitCode(78)
        }
        do {
            guard let bytes = try FileSystem.read(path) else { throw SystemError("open", errno: ENOENT, path: path) }
            return SubmitterAuth(tokensFileText: String(decoding: bytes, as: UTF8.self), anonymous: false)
        } catch {
            log(.error, "cannot read submit_tokens_file: \(error)")
            throw ExitCode(78)
        }
    }
}

/// Answers one request: a plain response through libfcgi, or a stream parked in the hub.
func serve(_ request: FastCGIRequest, api: HeraldAPI, hub: StreamHub) {
    switch api.handle(APIRequest(params: request.params, readBody: request.readBody)) {
    case let .response(response):
        do { try request.respond(response.cgiBytes) } catch {
            api.requests.abandonedAnswers.add(1, ordering: .relaxed)
            log(.warning, "gave up a \(response.status) answer to \(request.params["REQUEST_METHOD"] ?? "?") "
                + "\(request.params["DOCUMENT_URI"]?.prefix(200) ?? "?"): \(error)")
        }
        request.finish()
    case let .stream(target, retry, authorizedUntil):
        let connection = request.detach()
        hub.park(ParkedStream(fd: connection.fd.rawValue, requestID: connection.requestID, target: target, retryMilliseconds: retry,
                              authorizedUntil: authorizedUntil))
    }
}

func describe(_ source: ListenSource) -> String {
    switch source {
    case .standardInput: return "socket on fd 0"
    case .systemdActivation: return "systemd socket on fd 3"
    case let .path(path): return path
    }
}

do {
    var command = try HeraldFCGI.parseAsRoot()
    try command.run()
} catch {
    HeraldFCGI.exit(withError: error)
}
