import ArgumentParser
import HeraldCore
import HeraldStore

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

    /// The configuration and its state directory, or exit 78 (also for a state directory on a network filesystem) / 69.
    func openStore(create: Bool = false) throws -> (Config, DirectoryStore) {
        let config = try load()
        do { return (config, try DirectoryStore(root: config.stateDir, create: create, maxBodyBytes: config.maxBodyBytes)) } catch {
            throw Exit.failure(error)
        }
    }
}
