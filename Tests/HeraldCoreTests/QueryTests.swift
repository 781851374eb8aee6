import Testing
@testable import HeraldCore

@Suite struct QueryTests {
    @Test func basicPairs() throws {
        let q = try #require(Query("state=running&kind=report&limit=50"))
        #expect(q["state"] == "running")
        #expect(q["kind"] == "report")
        #expect(q["limit"] == "50")
        #expect(q["before"] == nil)
        #expect(q.pairs.map(\.0) == ["state", "kind", "limit"])
    }

    @Test(arguments: [
        ("a=x+y", "x y"), ("a=x%20y", "x y"), ("a=x%2By", "x+y"), ("a=%2b", "+"), ("a=%C3%A9", "é"), ("a=%c3%a9", "é"),
        ("a=%F0%9F%98%80", "😀"), ("a=%26%3D", "&="), ("a=b=c", "b=c"), ("a=", ""), ("a", ""), ("a=%25", "%"),
        ("a=é", "é"), ("a=A%2CB%2CC", "A,B,C"), ("a=01jdq5z8v3k4m5n6p7q8r9s0tx,01jdq5z8v3k4m5n6p7q8r9s0ty", "01jdq5z8v3k4m5n6p7q8r9s0tx,01jdq5z8v3k4m5n6p7q8r9s0ty"),
    ])
    func decoding(text: String, value: String) throws {
        let q = try #require(Query(text))
        #expect(q["a"] == value)
    }

    @Test func namesAreDecodedToo() throws {
        let q = try #require(Query("last+event%5Fid=7.10"))
        #expect(q["last event_id"] == "7.10")
    }

    @Test(arguments: ["a=%", "a=%2", "a=%zz", "a=%g0", "a=%0g", "%=1", "a=x%", "a=%%20", "a=%ff", "a=%C3", "a=%C3%28", "a=%ED%A0%80", "a=%C0%AF", "x=1&a=%E2%82"])
    func badEscapesAndInvalidUTF8AreRefused(text: String) {
        #expect(Query(text) == nil)
    }

    @Test func repeatedKeysLastWins() throws {
        let q = try #require(Query("limit=5&limit=10&limit=20"))
        #expect(q["limit"] == "20")
        #expect(q.pairs.count == 3)
    }

    @Test func emptyAndOddPieces() throws {
        #expect(Query("")?.pairs.isEmpty == true)
        let q = try #require(Query("&a=1&&b=2&"))
        #expect(q.pairs.count == 2)
        #expect(q["a"] == "1" && q["b"] == "2")
        let e = try #require(Query("=x"))
        #expect(e[""] == "x")
    }

    @Test func equality() {
        #expect(Query("a=1&b=2") == Query("a=1&b=2"))
        #expect(Query("a=1&b=2") != Query("b=2&a=1"))
        #expect(Query("a=1") != Query("a=2"))
    }
}
