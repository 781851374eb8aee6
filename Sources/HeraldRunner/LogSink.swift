import HeraldStore

/// Appends a job's output to its log through the claim, cut at a cap with a marker written once; past
/// the cap output is still read (so the program never blocks on a full pipe) but thrown away.
final class LogSink {
    private let claim: any JobClaim
    private let claimLost: StopFlag
    private var cap: LogCap

    /// A sink appending after what the log holds: a retry appends to the same log, so the cap holds across attempts.
    /// A log whose size cannot be read is reported and the job runs without one.
    init(claim: any JobClaim, cap: Int, claimLost: StopFlag) {
        self.claim = claim
        self.claimLost = claimLost
        do { self.cap = LogCap(cap: cap, size: try claim.logSize()) } catch {
            runnerLog(.warning, "job \(claim.job.id): no log: \(error)")
            self.cap = LogCap(cap: cap, size: cap)
        }
    }

    /// Appends what fits under the cap; the first overflow writes the marker.
    func append(_ bytes: [UInt8]) {
        guard !claimLost.isRaised else { return }
        let kept = cap.take(bytes)
        guard !kept.isEmpty else { return }
        do { try claim.appendLog(kept) } catch {
            if case .claimLost = error { claimLost.raise(); return }
            runnerLog(.warning, "job \(claim.job.id): log write failed: \(error)")
            cap.stop()  // a full disk: stop trying, the job goes on
        }
    }

    /// Appends a line written by the runner itself (the demo's steps).
    func line(_ text: String) { append(Array((text + "\n").utf8)) }
}

/// The 10 MiB cap of a job's log, as a pure decision: what of each chunk of output is kept.
struct LogCap {
    let cap: Int
    private(set) var size: Int
    private var cut: Bool

    /// A cap of `cap` bytes on a log holding `size` already.
    init(cap: Int, size: Int) {
        self.cap = cap
        self.size = size
        cut = size >= cap
    }

    /// The part of `bytes` to append (with the marker at the first overflow); counted as appended.
    mutating func take(_ bytes: [UInt8]) -> [UInt8] {
        guard !cut, !bytes.isEmpty else { return [] }
        let room = cap - size
        let kept = bytes.count <= room ? bytes : Array(bytes.prefix(room)) + LogCap.marker(cap: cap)
        cut = bytes.count > room
        size += kept.count
        return kept
    }

    /// Keeps nothing more.
    mutating func stop() { cut = true }

    /// The marker line, naming the cap in MiB when it is a whole number of them.
    static func marker(cap: Int) -> [UInt8] {
        let size = cap % (1 << 20) == 0 ? "\(cap >> 20) MiB" : "\(cap) bytes"
        return Array("\n[herald: log truncated at \(size)]\n".utf8)
    }
}
