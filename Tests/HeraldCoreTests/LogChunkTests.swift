import Testing
@testable import HeraldCore

@Suite struct LogChunkTests {
    func take(_ bytes: [UInt8], final: Bool) -> (String, Int) {
        let r = LogChunk.take(bytes[...], isFinal: final)
        return (r.text, r.consumed)
    }

    func normalized(_ s: String) -> String { s.lineEndsNormalized }

    @Test func aChunkIsCutByItsFramedSize() {
        // Text costs a byte a byte, a line end a whole "\ndata: ", and the LF of a CRLF nothing more.
        #expect(LogChunk.length(of: Array("abc".utf8)[...], framedWithin: 3) == 3)
        #expect(LogChunk.length(of: Array("abc".utf8)[...], framedWithin: 2) == 2)
        #expect(LogChunk.length(of: Array("a\nb".utf8)[...], framedWithin: 8) == 2)
        #expect(LogChunk.length(of: Array("a\nb".utf8)[...], framedWithin: 9) == 3)
        #expect(LogChunk.length(of: Array("a\r\nb".utf8)[...], framedWithin: 9) == 4)
        let empty = [UInt8](repeating: UInt8(ascii: "\n"), count: 65536)
        let fits = LogChunk.length(of: empty[...], framedWithin: 65536)
        #expect(fits == 65536 / 7)
        // What fits, framed, is within the budget.
        let framed = ServerSentEvents.event("log", data: LogChunk.take(empty[..<fits], isFinal: false).text)
        #expect(framed.utf8.count <= 65536 + "event: log\ndata: \n\n".utf8.count)
    }

    @Test func plainTextIsTakenWhole() {
        #expect(take(Array("hello\nworld".utf8), final: false) == ("hello\nworld", 11))
        #expect(take([], final: false) == ("", 0))
        #expect(take([], final: true) == ("", 0))
    }

    @Test func trailingCRIsHeldBackUnlessFinal() {
        #expect(take(Array("a\r".utf8), final: false) == ("a", 1))
        #expect(take(Array("a\r".utf8), final: true) == ("a\r", 2))
        #expect(take(Array("\r".utf8), final: false) == ("", 0))
        #expect(take(Array("a\r\n".utf8), final: false) == ("a\r\n", 3))
        #expect(take(Array("a\rb".utf8), final: false) == ("a\rb", 3))
    }

    @Test(arguments: ["é", "€", "😀", "ü"])
    func incompleteUTF8IsHeldBackUnlessFinal(char: String) {
        let bytes = Array(("ab" + char).utf8)
        for cut in 1..<char.utf8.count {
            let partial = Array(bytes.prefix(2 + cut))
            #expect(take(partial, final: false) == ("ab", 2), "cut \(cut)")
            let finalTake = take(partial, final: true)
            #expect(finalTake.1 == partial.count)
        }
        #expect(take(bytes, final: false) == ("ab" + char, bytes.count))
    }

    @Test func incompleteUTF8AfterACR() {
        let bytes: [UInt8] = Array("x\r".utf8) + [0xE2, 0x82]
        #expect(take(bytes, final: false) == ("x", 1))
    }

    @Test func invalidBytesAreNotHeldForever() {
        // Continuation bytes with no lead, or a run too long to be one character, go out (as U+FFFD).
        #expect(take([0x61, 0x80, 0x80, 0x80, 0x80], final: false).1 == 5)
        // A byte that never starts a character is only waited on while it is last.
        #expect(take([0x61, 0xFF, 0x62], final: false).1 == 3)
        #expect(take([0x61, 0xFF], final: true).1 == 2)
    }

    /// Feeds `text` in pieces cut at `cuts`, as the runner's reads would, through `LogChunk` and SSE framing,
    /// and returns what a browser concatenates from the `log` events, and the bytes consumed.
    func stream(_ bytes: [UInt8], cuts: [Int]) -> (String, Int) {
        var pending: [UInt8] = []
        var received = ""
        var consumedTotal = 0
        var start = 0
        let ends = (cuts.filter { $0 > 0 && $0 < bytes.count }.sorted()) + [bytes.count]
        for (k, end) in ends.enumerated() {
            pending += bytes[start..<max(start, end)]
            start = max(start, end)
            let isFinal = k == ends.count - 1
            let (text, consumed) = LogChunk.take(pending[...], isFinal: isFinal)
            pending.removeFirst(consumed)
            consumedTotal += consumed
            if consumed > 0 {
                let events = SSEReader.read(ServerSentEvents.event("log", data: text))
                #expect(events.count == 1)
                received += events.first?.data ?? ""
            }
        }
        #expect(pending.isEmpty)
        return (received, consumedTotal)
    }

    @Test(arguments: [
        "hello\nworld\n",
        "windows\r\nline\r\nends\r\n",
        "old mac\rends\r",
        "mixed\r\n\r\r\n\n\rend",
        "ünïcödé € 😀 text\r\nwith 🎉 emoji\n",
        "\r\n\r\n",
        "",
    ])
    func concatenationOfChunksIsTheNormalizedText(text: String) {
        let bytes = Array(text.utf8)
        // Every single cut point, and every byte on its own.
        for cut in 0...bytes.count {
            let (received, consumed) = stream(bytes, cuts: [cut])
            #expect(received == normalized(text), "cut at \(cut)")
            #expect(consumed == bytes.count)
        }
        let (received, consumed) = stream(bytes, cuts: Array(0...bytes.count))
        #expect(received == normalized(text))
        #expect(consumed == bytes.count)
    }

    @Test func pseudoRandomCuts() {
        let text = String(repeating: "step 1/3 ✓\r\nprogress: 😀 ok\rmore é\n", count: 20)
        let bytes = Array(text.utf8)
        var seed: UInt64 = 12345
        for _ in 0..<50 {
            var cuts: [Int] = []
            for _ in 0..<15 {
                seed = seed &* 6364136223846793005 &+ 1442695040888963407
                cuts.append(Int(seed >> 33) % bytes.count)
            }
            let (received, consumed) = stream(bytes, cuts: cuts)
            #expect(received == normalized(text))
            #expect(consumed == bytes.count)
        }
    }
}
