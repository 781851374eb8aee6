import HeraldPOSIX

extension ReadTokenSecret {
    /// The secrets in `paths` (config `read_token_secret_file`), in order, or a message naming the file and the problem.
    public static func load(_ paths: [String]) -> Result<[[UInt8]], ReadTokenSecretLoadError> {
        var secrets: [[UInt8]] = []
        for path in paths {
            let bytes: [UInt8]
            do {
                guard let read = try FileSystem.read(path) else { return .failure(ReadTokenSecretLoadError(path: path, problem: "does not exist")) }
                bytes = read
            } catch {
                return .failure(ReadTokenSecretLoadError(path: path, problem: "cannot be read: \(error)"))
            }
            switch parse(bytes) {
            case let .success(secret): secrets.append(secret)
            case let .failure(why): return .failure(ReadTokenSecretLoadError(path: path, problem: why.description))
            }
        }
        return .success(secrets)
    }
}

/// A `read_token_secret_file` that cannot serve as a secret.
public struct ReadTokenSecretLoadError: Error, Sendable, CustomStringConvertible {
    public let path: String
    public let problem: String
    public var description: String { "read_token_secret_file \(path) \(problem)" }
}
