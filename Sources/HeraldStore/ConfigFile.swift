import Glibc
import HeraldCore
import HeraldPOSIX

/// Finding and reading the configuration file: `--config`, else `HERALD_CONFIG`, else `/etc/herald/herald.yml`.
public enum ConfigFile {
    /// The path to read: the explicit one, else `HERALD_CONFIG`, else the default.
    public static func path(explicit: String?) -> String {
        if let explicit { return explicit }
        if let env = getenv("HERALD_CONFIG"), env.pointee != 0 { return String(cString: env) }
        return Config.defaultPath
    }

    /// Reads and parses the configuration; the error names the file, and the key and line when there is one.
    public static func load(explicit: String?) throws(ConfigError) -> Config {
        let path = path(explicit: explicit)
        let bytes: [UInt8]?
        do { bytes = try FileSystem.read(path) } catch {
            throw ConfigError(key: "", line: nil, message: "\(path): \(error)")
        }
        guard let bytes else { throw ConfigError(key: "", line: nil, message: "\(path): no such file") }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ConfigError(key: "", line: nil, message: "\(path): not UTF-8 text")
        }
        var environment: [String: String] = [:]
        if let url = getenv(Config.databaseURLVariable) { environment[Config.databaseURLVariable] = String(cString: url) }
        do { return try Config.parse(yaml: text, environment: environment) } catch {
            throw ConfigError(key: error.key, line: error.line, message: "\(error.message) (in \(path))")
        }
    }
}
