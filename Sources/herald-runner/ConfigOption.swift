import ArgumentParser
import HeraldCore
import HeraldStore
import HeraldStores

/// `--config PATH`, taken by every subcommand; without it `HERALD_CONFIG`, then /etc/herald/herald.yml.
struct ConfigOption: ParsableArguments {
    @Option(help: "The configuration file (default: $HERALD_CONFIG, else /etc/herald/herald.yml).")
    var config: String?

    /// The configuration, or exit 78 naming the key and line.
    func load() throws -> Config {
        do { return try ConfigFile.load(explicit: config) } catch {
            throw Exit.failure(.badConfig, "bad configuration: \(error)")
        }
    }

    /// The configuration and the store it names, or exit 78 (a store only another configuration helps) / 69
    /// (not with `waitingForDatabase`, for `work`, when PostgreSQL is away: see `StoreChoice.unreachable`).
    func openStore(create: Bool = false, waitingForDatabase: Bool = false) throws -> (Config, StoreChoice) {
        let config = try load()
        do { return (config, try StoreChoice.open(config, create: create, waitingForDatabase: waitingForDatabase)) } catch {
            throw Exit.failure(error)
        }
    }
}
