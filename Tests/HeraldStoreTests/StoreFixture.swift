import Foundation
import HeraldCore
import HeraldPOSIX
@testable import HeraldStore

/// A store on a fresh temporary directory, removed when the fixture goes.
final class StoreFixture {
    let root: String
    let store: DirectoryStore
    private var clock: Int64 = 1_764_000_000_000

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("herald-store-\(UUID().uuidString)").path
        store = try DirectoryStore(root: root, create: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    /// A later time at every call, so IDs and timestamps sort in creation order.
    func now() -> Timestamp {
        clock += 1
        return Timestamp(milliseconds: clock)
    }

    /// Submits a job of `kind` and returns it.
    @discardableResult
    func submit(_ kind: String = "report", params: [String: String] = [:]) throws -> Job {
        let time = now()
        let job = Job(id: JobID(milliseconds: UInt64(time.milliseconds), random: RandomSource.bytes(10)), kind: kind, params: params, now: time)
        try store.submit(job)
        return job
    }

    static func kinds(concurrency: Int? = nil, retries: Int = 0) -> [String: KindConfig] {
        ["report": KindConfig(name: "report", executor: .command(["/bin/true"]), concurrency: concurrency, retries: retries)]
    }
}
