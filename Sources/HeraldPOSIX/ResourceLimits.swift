import CHeraldSys

/// This process's resource limits.
public enum ResourceLimits {
    /// Raises the soft open-file limit to the hard one; returns the limit then in force.
    public static func raiseOpenFiles() throws(SystemError) -> Int {
        Int(try retryingEINTR("setrlimit(RLIMIT_NOFILE)") { herald_raise_open_files() })
    }
}
