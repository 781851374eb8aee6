import Testing
@testable import HeraldCore

@Suite struct RouterTests {
    static let id = "01jdq5z8v3k4m5n6p7q8r9s0tx"
    static let jobID = JobID(id)!
    let router = Router(prefix: "/jobs")

    @Test(arguments: [
        ("POST", "/jobs", Route.submit),
        ("GET", "/jobs", .list),
        ("GET", "/jobs/\(id)", .job(jobID)),
        ("GET", "/jobs/\(id)/events", .jobEvents(jobID)),
        ("GET", "/jobs/\(id)/log", .jobLog(jobID)),
        ("POST", "/jobs/\(id)/cancel", .cancel(jobID)),
        ("GET", "/jobs/events", .events),
        ("GET", "/healthz", .healthz),
        ("GET", "/metrics", .metrics),
    ])
    func everyRoute(method: String, path: String, route: Route) {
        #expect(router.route(method: method, path: path) == .success(route))
    }

    @Test(arguments: [
        ("PUT", "/jobs", ["GET", "POST"]),
        ("DELETE", "/jobs", ["GET", "POST"]),
        ("POST", "/jobs/\(id)", ["GET"]),
        ("DELETE", "/jobs/\(id)", ["GET"]),
        ("POST", "/jobs/\(id)/events", ["GET"]),
        ("PUT", "/jobs/\(id)/log", ["GET"]),
        ("GET", "/jobs/\(id)/cancel", ["POST"]),
        ("POST", "/jobs/events", ["GET"]),
        ("POST", "/healthz", ["GET"]),
        ("DELETE", "/metrics", ["GET"]),
        ("get", "/jobs", ["GET", "POST"]), // methods are case-sensitive
    ])
    func wrongMethodIs405WithAllow(method: String, path: String, allow: [String]) {
        #expect(router.route(method: method, path: path) == .failure(.methodNotAllowed(allow: allow)))
    }

    @Test func allowHeaderForJobs() {
        guard case let .failure(.methodNotAllowed(allow)) = router.route(method: "PATCH", path: "/jobs") else {
            Issue.record("not a 405"); return
        }
        #expect(allow.joined(separator: ", ") == "GET, POST")
    }

    @Test(arguments: [
        "/", "", "/job", "/jobsx", "/jobs/", "/jobs//events", "/jobs/../etc/passwd", "/jobs/..%2f..%2fetc",
        "/jobs/not-an-id", "/jobs/\(id.uppercased())", "/jobs/\(id)x", "/jobs/\(id.dropLast())",
        "/jobs/\(id)/", "/jobs/\(id)/status", "/jobs/\(id)/events/extra", "/jobs/\(id)/log/", "/jobs/\(id)//log",
        "/jobs/0000000000000000000000000i", "/jobs/" + String(repeating: "é", count: 13), "/healthz/", "/metrics/x",
        "/jobs/events/x", "/jobs/events/", "/other/\(id)", "/JOBS",
    ])
    func unknownPathsAre404(path: String) {
        for method in ["GET", "POST", "PUT"] {
            #expect(router.route(method: method, path: path) == .failure(.notFound), "\(method) \(path)")
        }
    }

    @Test func eventsRouteIsNotAJob() {
        #expect(router.route(method: "GET", path: "/jobs/events") == .success(.events))
        #expect(router.route(method: "GET", path: "/jobs/\(Self.id)/events") == .success(.jobEvents(Self.jobID)))
    }

    @Test func customPrefix() {
        let r = Router(prefix: "/api/v1/jobs")
        #expect(r.route(method: "POST", path: "/api/v1/jobs") == .success(.submit))
        #expect(r.route(method: "GET", path: "/api/v1/jobs/events") == .success(.events))
        #expect(r.route(method: "GET", path: "/api/v1/jobs/\(Self.id)/log") == .success(.jobLog(Self.jobID)))
        #expect(r.route(method: "GET", path: "/healthz") == .success(.healthz))
        #expect(r.route(method: "GET", path: "/metrics") == .success(.metrics))
        #expect(r.route(method: "GET", path: "/jobs") == .failure(.notFound))
        #expect(r.route(method: "GET", path: "/jobs/\(Self.id)") == .failure(.notFound))
        #expect(r.route(method: "PUT", path: "/api/v1/jobs") == .failure(.methodNotAllowed(allow: ["GET", "POST"])))
    }

    @Test func routeNames() {
        let names = [Route.submit, .list, .job(Self.jobID), .jobEvents(Self.jobID), .jobLog(Self.jobID), .cancel(Self.jobID), .events, .healthz, .metrics].map(\.name)
        #expect(names == ["submit", "list", "job", "job_events", "job_log", "cancel", "events", "healthz", "metrics"])
    }
}
