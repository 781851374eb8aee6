import Testing
@testable import HeraldCore

@Suite struct JSONTests {
    @Test(arguments: [
        "null", "true", "false", "0", "-0", "1.50", "1e10", "-1.25E-3", "123456789012345678901234567890",
        "\"\"", "\"hi\"", "[]", "{}", "[1,\"a\",null,true,{\"k\":[2.0]}]",
        "{\"b\":1,\"a\":2}",
    ])
    func compactRoundTrip(text: String) throws {
        let value = try JSON.parse(text)
        #expect(value.text == text)
        #expect(try JSON.parse(value.text) == value)
    }

    @Test func numbersKeepTheirExactText() throws {
        #expect(try JSON.parse("1.50") == .number("1.50"))
        #expect(try JSON.parse("1E+2") == .number("1E+2"))
        #expect(try JSON.parse("[0.10]").text == "[0.10]")
        #expect(try JSON.parse("12345678901234567890").text == "12345678901234567890")
    }

    @Test func whitespaceIsSkippedAndNotKept() throws {
        let value = try JSON.parse(" \t\r\n{ \"a\" : [ 1 , 2 ] }\n ")
        #expect(value.text == "{\"a\":[1,2]}")
    }

    @Test func objectsKeepTheirWrittenOrder() throws {
        let value = try JSON.parse("{\"z\":1,\"a\":2,\"m\":3}")
        guard case let .object(members) = value else { Issue.record("not an object"); return }
        #expect(members.map(\.0) == ["z", "a", "m"])
        // Order matters for equality, as written.
        #expect(value != (try JSON.parse("{\"a\":2,\"z\":1,\"m\":3}")))
    }

    @Test func duplicateKeysLastWinsInSubscript() throws {
        let value = try JSON.parse("{\"a\":1,\"b\":2,\"a\":3}")
        #expect(value["a"] == .number("3"))
        #expect(value["b"] == .number("2"))
        #expect(value["c"] == nil)
        #expect(JSON.array([])["a"] == nil)
    }

    @Test func accessors() throws {
        #expect(JSON.string("x").stringValue == "x")
        #expect(JSON.number("1").stringValue == nil)
        #expect(JSON.number("42.5").doubleValue == 42.5)
        #expect(JSON.string("42").doubleValue == nil)
        #expect(JSON.number("7").intValue == 7)
        #expect(JSON.number("7.0").intValue == 7)
        #expect(JSON.number("1e2").intValue == 100)
        #expect(JSON.number("7.5").intValue == nil)
        #expect(JSON.int(-3).text == "-3")
        #expect(JSON.optional(nil) == .null)
        #expect(JSON.optional("a") == .string("a"))
    }

    @Test(arguments: [(42.0, "42.0"), (0.0, "0.0"), (100.0, "100.0"), (42.5, "42.5"), (-1.0, "-1.0"), (0.25, "0.25")])
    func doubleText(value: Double, text: String) {
        #expect(JSON.double(value).text == text)
    }

    @Test func nonFiniteDoublesBecomeNull() {
        #expect(JSON.double(.nan) == .null)
        #expect(JSON.double(.infinity) == .null)
        #expect(JSON.double(-.infinity) == .null)
    }

    @Test func doubleTextIsValidJSON() throws {
        for v in [1e-7, 1e15, 1e300, 123.456, -0.0, 99.99999] {
            let text = JSON.double(v).text
            let parsed = try JSON.parse(text)
            #expect(parsed.doubleValue == v, "\(text)")
        }
    }

    // MARK: Escapes

    @Test func encoderEscapes() {
        #expect(JSON.string("a\"b\\c").text == #""a\"b\\c""#)
        #expect(JSON.string("\n\r\t").text == #""\n\r\t""#)
        #expect(JSON.string("\u{0}\u{1}\u{8}\u{C}\u{1F}").text == #""\u0000\u0001\u0008\u000c\u001f""#)
        #expect(JSON.string("\u{2028}\u{2029}").text == #""\u2028\u2029""#)
        #expect(JSON.string("é😀/").text == "\"é😀/\"")
        #expect(JSON.string("\u{7F}").text == "\"\u{7F}\"")
    }

    @Test func encodedTextHasNoRawLineBreaksOrControls() throws {
        var all = ""
        for v in 0..<0x20 { all.unicodeScalars.append(Unicode.Scalar(UInt8(v))) }
        all += "\u{2028}\u{2029}"
        let text = JSON.object([("k\n", .string(all))]).text
        #expect(!text.unicodeScalars.contains { $0.value < 0x20 || $0 == "\u{2028}" || $0 == "\u{2029}" })
        #expect(try JSON.parse(text) == .object([("k\n", .string(all))]))
    }

    @Test func parserEscapes() throws {
        #expect(try JSON.parse(#""\"\\\/\b\f\n\r\t""#) == .string("\"\\/\u{8}\u{C}\n\r\t"))
        #expect(try JSON.parse(#""\u00e9\u00E9""#) == .string("éé"))
        #expect(try JSON.parse(#""\u2028""#) == .string("\u{2028}"))
        #expect(try JSON.parse(#""\ud83d\ude00""#) == .string("😀"))
        #expect(try JSON.parse(#""\u0000""#) == .string("\u{0}"))
    }

    @Test func rawUTF8IsDecoded() throws {
        #expect(try JSON.parse(Array("\"é😀€\"".utf8)) == .string("é😀€"))
    }

    @Test func roundTripOfEveryKindOfString() throws {
        let s = "plain \" \\ / \u{0} \u{1F} \u{7F} \u{2028} \u{2029} é 😀 \r\n end"
        #expect(try JSON.parse(JSON.string(s).text) == .string(s))
    }

    // MARK: Refusals

    @Test(arguments: [
        [0x22, 0xFF, 0x22],                   // never valid
        [0x22, 0xC3, 0x22],                   // truncated 2-byte sequence
        [0x22, 0xC0, 0xAF, 0x22],             // overlong '/'
        [0x22, 0xE0, 0x80, 0xAF, 0x22],       // overlong 3-byte
        [0x22, 0xED, 0xA0, 0x80, 0x22],       // UTF-8 encoded surrogate
        [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], // above U+10FFFF
        [0x22, 0x80, 0x22],                   // lone continuation byte
        [0x22, 0xE2, 0x82],                   // truncated at end
        [0xEF, 0xBB, 0xBF, 0x31],             // BOM is not JSON
    ] as [[UInt8]])
    func invalidUTF8IsRefused(bytes: [UInt8]) {
        #expect(throws: JSONParseError.self) { try JSON.parse(bytes) }
    }

    @Test(arguments: [
        #""\ud83d""#, #""\ud83dx""#, #""\ud83d\u0041""#, #""\ude00""#, #""\ude00\ud83d""#, #""\ud83d\n""#,
    ])
    func loneSurrogatesAreRefused(text: String) {
        #expect(throws: JSONParseError.self) { try JSON.parse(text) }
    }

    @Test(arguments: [
        "", " ", "nul", "tru", "True", "NULL", "01", "-", "1.", ".5", "+1", "1e", "1e+", "0x10", "NaN", "Infinity",
        "[1,]", "[1 2]", "{\"a\"}", "{\"a\":}", "{a:1}", "{'a':1}", "{\"a\":1,}", "[", "]", "{", "\"abc",
        "\"a\nb\"", "\"tab\there\"", "\"\\x\"", "\"\\u12\"", "\"\\u12G4\"", "\"\\", "//c\n1", "[1]/*c*/",
    ])
    func malformedTextIsRefused(text: String) {
        #expect(throws: JSONParseError.self) { try JSON.parse(text) }
    }

    @Test(arguments: ["1 2", "{} {}", "[]x", "null,", "\"a\"\"b\"", "true false", "{}\u{0}"])
    func trailingGarbageIsRefused(text: String) {
        #expect(throws: JSONParseError.self) { try JSON.parse(text) }
    }

    @Test func depthLimit() throws {
        let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect(throws: Never.self) { try JSON.parse(ok) }
        let deep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        #expect(throws: JSONParseError.self) { try JSON.parse(deep) }
        let deepObjects = String(repeating: "{\"a\":", count: 65) + "1" + String(repeating: "}", count: 65)
        #expect(throws: JSONParseError.self) { try JSON.parse(deepObjects) }
        // A custom limit, and siblings do not add up.
        #expect(throws: JSONParseError.self) { try JSON.parse(Array("[[[1]]]".utf8), maxDepth: 2) }
        #expect(throws: Never.self) { try JSON.parse(Array("[[1],[2],[[3]]]".utf8), maxDepth: 3) }
    }

    @Test func veryDeepInputDoesNotCrash() {
        let deep = String(repeating: "[", count: 100_000)
        #expect(throws: JSONParseError.self) { try JSON.parse(deep) }
    }

    @Test func errorsCarryTheOffset() {
        do {
            _ = try JSON.parse("[1,2,x]")
            Issue.record("parsed")
        } catch {
            #expect(error.offset == 5)
            #expect(error.description.contains("byte 5"))
        }
    }
}
