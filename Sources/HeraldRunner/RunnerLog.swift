import HeraldPOSIX

/// The runner's log: `herald-runner: LEVEL: message` on stderr (journald and cron mail read it as is).
public let runnerLog = Log(program: "herald-runner")
