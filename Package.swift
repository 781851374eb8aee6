// swift-tools-version:6.0
//
// Herald: live job status for browsers, as two small Unix programs and a store (a directory, or PostgreSQL).
//
//   herald-fcgi ──▶ HeraldAPI ──▶ HeraldStreams (parked SSE hub, epoll)
//        │              │               │
//        ▼              ▼               ▼
//   HeraldFastCGI   HeraldStore ◀── herald-runner ──▶ HeraldRunner (spawn, fd 3, logs; writes under its claim)
//   (libfcgi)      (the seam: JobStore, RunnerStore, JobClaim; DirectoryStore, MemoryStore)
//        │              ▲           HeraldTokens (read tokens: HS256 JWT, libcrypto)
//        └──▶ HeraldStores (StoreChoice: the config's store) ◀── herald-runner
//        all on HeraldCore (pure: jobs, config, SSE, FastCGI records)
//        and HeraldPOSIX (every syscall wrapped once)
import PackageDescription

let package = Package(
    name: "Herald",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "herald-fcgi", targets: ["herald-fcgi"]),
        .executable(name: "herald-runner", targets: ["herald-runner"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // C: libfcgi as a system library, and the few kernel interfaces Glibc lacks (epoll, eventfd).
        .systemLibrary(name: "CFastCGI", pkgConfig: "fcgi", providers: [.apt(["libfcgi-dev"])]),
        // C: OpenSSL's libcrypto, for HMAC-SHA-256, SHA-256 and CRYPTO_memcmp only.
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .target(name: "CHeraldSys"),
        // C: libpq, PostgreSQL's client library (the PostgreSQL store, SPEC §8).
        .systemLibrary(name: "CPostgres", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),

        // Pure core: no I/O. Job model, state machine, IDs, config, SSE and FastCGI framing, routing.
        .target(name: "HeraldCore", dependencies: [.product(name: "Yams", package: "Yams")]),
        // Every syscall, wrapped once, with its name in the error.
        .target(name: "HeraldPOSIX", dependencies: ["CHeraldSys"]),
        // Read tokens (SPEC §9): HS256 JWTs checked against the secret, and the grant they carry.
        .target(name: "HeraldTokens", dependencies: ["CCrypto", "HeraldCore", "HeraldPOSIX"]),
        // The store seam (what the web side and the runners do with jobs), the state directory store
        // (the only code that touches the directory) and the memory store for tests.
        .target(name: "HeraldStore", dependencies: ["HeraldCore", "HeraldPOSIX"]),
        // Every libpq call, wrapped once.
        .target(name: "HeraldPostgres", dependencies: ["CPostgres"]),
        // The PostgreSQL store: schema and migrations, claims, liveness, fencing, LISTEN/NOTIFY.
        .target(name: "HeraldPostgresStore", dependencies: ["HeraldCore", "HeraldPOSIX", "HeraldStore", "HeraldPostgres"]),
        // A private PostgreSQL cluster for tests (initdb and pg_ctl as nobody, in a temp dir).
        .target(name: "HeraldPostgresTesting", dependencies: ["HeraldPOSIX"], path: "Tests/Support/HeraldPostgresTesting"),
        // The one place a configuration becomes a store: the state directory, or PostgreSQL.
        .target(name: "HeraldStores", dependencies: ["HeraldCore", "HeraldStore", "HeraldPostgresStore"]),
        // Running jobs: claiming, spawning, fd-3 progress, logs, timeouts, retries, recovery.
        .target(name: "HeraldRunner", dependencies: ["HeraldCore", "HeraldPOSIX", "HeraldStore"]),
        // Every libfcgi call, wrapped once.
        .target(name: "HeraldFastCGI", dependencies: ["CFastCGI", "HeraldPOSIX"]),
        // Parked event streams: subscriptions, fan-out, hang-up detection, heartbeats, write deadlines.
        .target(name: "HeraldStreams", dependencies: ["HeraldCore", "HeraldPOSIX", "HeraldStore"]),
        // The HTTP API: routes to answers, auth, metrics.
        .target(name: "HeraldAPI", dependencies: ["HeraldCore", "HeraldStore", "HeraldStreams", "HeraldTokens"]),

        // Executables: wiring only.
        .executableTarget(name: "herald-fcgi", dependencies: [
            "HeraldCore", "HeraldStore", "HeraldStores", "HeraldFastCGI", "HeraldStreams", "HeraldAPI", "HeraldPOSIX", "HeraldTokens",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "herald-runner", dependencies: [
            "HeraldCore", "HeraldStore", "HeraldStores", "HeraldRunner", "HeraldPOSIX", "HeraldTokens", "HeraldPostgresStore",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .testTarget(name: "HeraldCoreTests", dependencies: ["HeraldCore"]),
        .testTarget(name: "HeraldStoreTests", dependencies: ["HeraldStore", "HeraldPOSIX", "HeraldPostgres", "HeraldPostgresStore", "HeraldPostgresTesting"]),
        .testTarget(name: "HeraldRunnerTests", dependencies: ["HeraldRunner", "HeraldStore", "HeraldPOSIX"]),
        .testTarget(name: "HeraldStreamsTests", dependencies: ["HeraldStreams", "HeraldStore", "HeraldCore", "HeraldPOSIX"]),
        .testTarget(name: "HeraldAPITests", dependencies: ["HeraldAPI", "HeraldStore", "HeraldStreams", "HeraldCore", "HeraldTokens"]),
        .testTarget(name: "HeraldTokensTests", dependencies: ["HeraldTokens", "HeraldCore"]),
        .testTarget(name: "HeraldPostgresTests", dependencies: [
            "HeraldPostgres", "HeraldPostgresStore", "HeraldPostgresTesting", "HeraldStore", "HeraldCore", "HeraldPOSIX",
        ]),
    ],
    swiftLanguageModes: [.v6]
)
