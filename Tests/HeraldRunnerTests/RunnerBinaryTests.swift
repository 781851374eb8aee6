import Testing

/// Tests that drive the built `herald-runner` binary. One at a time: they time processes and count them.
@Suite(.serialized) struct RunnerBinaryTests {}
