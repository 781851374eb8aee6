import Testing
@testable import HeraldCore

@Suite struct FastCGIRecordTests {
    @Test func smallPayloadHeaderAndPadding() {
        var out: [UInt8] = []
        FastCGIRecord.appendStdout(Array("hello".utf8), requestID: 1, to: &out)
        #expect(out == [1, 6, 0, 1, 0, 5, 3, 0] + Array("hello".utf8) + [0, 0, 0])
    }

    @Test func requestIDIsBigEndian() {
        var out: [UInt8] = []
        FastCGIRecord.appendStdout([0x41], requestID: 0x1234, to: &out)
        #expect(Array(out.prefix(8)) == [1, 6, 0x12, 0x34, 0, 1, 7, 0])
        #expect(out.count == 16)
    }

    @Test(arguments: [1, 7, 8, 9, 15, 16, 255, 256, 300, 4096, 65535])
    func paddingToEight(length: Int) {
        var out: [UInt8] = []
        let payload = [UInt8](repeating: 0x61, count: length)
        FastCGIRecord.appendStdout(payload, requestID: 3, to: &out)
        let padding = (8 - length % 8) % 8
        #expect(out.count == 8 + length + padding)
        #expect(out.count % 8 == 0)
        #expect(Int(out[4]) << 8 | Int(out[5]) == length)
        #expect(Int(out[6]) == padding)
        #expect(out[7] == 0)
        #expect(Array(out[8..<8 + length]) == payload)
        #expect(out[(8 + length)...].allSatisfy { $0 == 0 })
    }

    @Test func emptyPayloadWritesNothing() {
        // An empty FCGI_STDOUT would end the stream: only appendEnd may write one.
        var out: [UInt8] = [9]
        FastCGIRecord.appendStdout([UInt8](), requestID: 1, to: &out)
        #expect(out == [9])
    }

    /// Reads records back: (type, requestID, content).
    static func records(_ bytes: [UInt8]) -> [(UInt8, UInt16, [UInt8])] {
        var result: [(UInt8, UInt16, [UInt8])] = []
        var i = 0
        while i + 8 <= bytes.count {
            #expect(bytes[i] == 1)
            let length = Int(bytes[i + 4]) << 8 | Int(bytes[i + 5])
            let padding = Int(bytes[i + 6])
            result.append((bytes[i + 1], UInt16(bytes[i + 2]) << 8 | UInt16(bytes[i + 3]), Array(bytes[i + 8..<i + 8 + length])))
            i += 8 + length + padding
        }
        #expect(i == bytes.count)
        return result
    }

    @Test(arguments: [65536, 70000, 65535 * 2, 65535 * 2 + 1, 200_000])
    func largePayloadsAreSplitAt65535(length: Int) {
        let payload = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var out: [UInt8] = []
        FastCGIRecord.appendStdout(payload, requestID: 2, to: &out)
        let recs = Self.records(out)
        #expect(recs.count == (length + 65534) / 65535)
        #expect(recs.allSatisfy { $0.0 == 6 && $0.1 == 2 && !$0.2.isEmpty && $0.2.count <= 65535 })
        #expect(recs.dropLast().allSatisfy { $0.2.count == 65535 })
        #expect(recs.flatMap(\.2) == payload)
    }

    @Test func splitHeadersExact() {
        var out: [UInt8] = []
        FastCGIRecord.appendStdout([UInt8](repeating: 0x62, count: 70000), requestID: 1, to: &out)
        #expect(Array(out[0..<8]) == [1, 6, 0, 1, 0xFF, 0xFF, 1, 0])
        let second = 8 + 65535 + 1
        #expect(Array(out[second..<second + 8]) == [1, 6, 0, 1, 0x11, 0x71, 7, 0]) // 4465 bytes, 7 padding
        #expect(out.count == second + 8 + 4465 + 7)
    }

    @Test func endRecords() {
        var out: [UInt8] = []
        FastCGIRecord.appendEnd(requestID: 0x0102, to: &out)
        #expect(out == [
            1, 6, 1, 2, 0, 0, 0, 0,          // empty FCGI_STDOUT: end of the stream
            1, 3, 1, 2, 0, 8, 0, 0,          // FCGI_END_REQUEST, 8-byte body
            0, 0, 0, 0, 0, 0, 0, 0,          // appStatus 0, FCGI_REQUEST_COMPLETE, reserved
        ])
    }

    @Test func appendsToExistingBytes() {
        var out: [UInt8] = [0xAA]
        FastCGIRecord.appendStdout(Array("ok".utf8), requestID: 1, to: &out)
        FastCGIRecord.appendEnd(requestID: 1, to: &out)
        #expect(out.first == 0xAA)
        let recs = Self.records(Array(out.dropFirst()))
        #expect(recs.map(\.0) == [6, 6, 3])
        #expect(recs[0].2 == Array("ok".utf8))
        #expect(recs[1].2.isEmpty)
    }
}
