import Testing
@testable import HeraldCore

/// A minimal WHATWG event-stream reader: what a browser makes of the bytes.
struct SSEReader {
    struct Event: Equatable { var type = "message"; var data = ""; var id: String? }
    static func read(_ stream: String) -> [Event] {
        var events: [Event] = []
        var current = Event()
        var dataLines: [String]? = nil
        // Browsers treat CR, LF and CRLF as line ends.
        for line in stream.lineEndsNormalized.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.isEmpty {
                if let lines = dataLines {
                    current.data = lines.joined(separator: "\n")
                    events.append(current)
                }
                current = Event()
                dataLines = nil
                continue
            }
            if line.hasPrefix(":") { continue }
            let colon = line.firstIndex(of: ":") ?? line.endIndex
            let field = String(line[..<colon])
            var value = colon < line.endIndex ? line[line.index(after: colon)...] : ""
            if value.hasPrefix(" ") { value = value.dropFirst() }
            switch field {
            case "event": current.type = String(value)
            case "data": dataLines = (dataLines ?? []) + [String(value)]
            case "id": current.id = String(value)
            default: break
            }
        }
        return events
    }
}

extension String {
    /// CRLF and CR turned into LF, scalar by scalar (a String's CRLF is one Character).
    var lineEndsNormalized: String {
        var out = String.UnicodeScalarView()
        var previousCR = false
        for s in unicodeScalars {
            if s == "\r" { out.append("\n") } else if !(s == "\n" && previousCR) { out.append(s) }
            previousCR = s == "\r"
        }
        return String(out)
    }
}

@Suite struct ServerSentEventsTests {
    @Test(arguments: [
        ("a", "data: a\n\n"),
        ("", "data: \n\n"),
        ("a\n", "data: a\ndata: \n\n"),
        ("a\nb", "data: a\ndata: b\n\n"),
        ("\n", "data: \ndata: \n\n"),
        ("a\n\nb", "data: a\ndata: \ndata: b\n\n"),
        ("a\r\nb", "data: a\ndata: b\n\n"),
        ("a\rb", "data: a\ndata: b\n\n"),
        ("a\r", "data: a\ndata: \n\n"),
        ("a\r\r\nb", "data: a\ndata: \ndata: b\n\n"),
        ("a\n\rb", "data: a\ndata: \ndata: b\n\n"),
        (" lead", "data:  lead\n\n"),
    ])
    func dataFraming(data: String, framed: String) {
        #expect(ServerSentEvents.event(nil, data: data) == framed)
    }

    @Test func eventNameAndIDLines() {
        let json = #"{"id":"x","seq":7}"#
        #expect(ServerSentEvents.event("status", id: "7", data: json) == "event: status\nid: 7\ndata: \(json)\n\n")
        #expect(ServerSentEvents.event("end", data: #"{"state":"succeeded"}"#) == "event: end\ndata: {\"state\":\"succeeded\"}\n\n")
        #expect(!ServerSentEvents.event("end", data: "{}").contains("id:"))
    }

    @Test func retryAndPing() {
        #expect(ServerSentEvents.retry(milliseconds: 3000) == "retry: 3000\n\n")
        #expect(ServerSentEvents.ping == ": ping\n\n")
        #expect(SSEReader.read(ServerSentEvents.ping + ServerSentEvents.retry(milliseconds: 1)).isEmpty)
    }

    @Test(arguments: ["", "x", "a\nb", "a\r\nb\rc\n", "\n\n\n", "é😀\u{2028}\n", "line\r", "\r\n", "tab\tand: colon"])
    func browserSeesTheNormalizedData(data: String) {
        let stream = ServerSentEvents.event("log", id: "3.10", data: data)
        let events = SSEReader.read(stream)
        #expect(events == [SSEReader.Event(type: "log", data: data.lineEndsNormalized, id: "3.10")])
    }

    @Test func eventsConcatenate() {
        let stream = ServerSentEvents.retry(milliseconds: 2500)
            + ServerSentEvents.event("status", id: "1", data: "{}")
            + ServerSentEvents.ping
            + ServerSentEvents.event("end", data: "{\"state\":\"failed\"}")
        let events = SSEReader.read(stream)
        #expect(events.map(\.type) == ["status", "end"])
        #expect(events.map(\.id) == ["1", nil])
    }
}
