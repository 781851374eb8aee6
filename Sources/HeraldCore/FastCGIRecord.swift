/// FastCGI record framing for responses (FastCGI 1.0 §3.3, §5.3, §5.5): what a parked stream writes itself.
public enum FastCGIRecord {
    static let version: UInt8 = 1
    static let typeEndRequest: UInt8 = 3
    static let typeStdout: UInt8 = 6
    static let maxContent = 65535

    /// `payload` as FCGI_STDOUT records (split at 65,535 bytes, padded to 8), appended to `out`.
    public static func appendStdout(_ payload: some Collection<UInt8>, requestID: UInt16, to out: inout [UInt8]) {
        var rest = payload[...]
        while !rest.isEmpty {
            let chunk = rest.prefix(maxContent)
            appendHeader(type: typeStdout, requestID: requestID, contentLength: chunk.count, to: &out)
            out.append(contentsOf: chunk)
            out.append(contentsOf: repeatElement(0, count: padding(chunk.count)))
            rest = rest.dropFirst(chunk.count)
        }
    }

    /// The end of a response: an empty FCGI_STDOUT (end of stream) and FCGI_END_REQUEST with status 0.
    public static func appendEnd(requestID: UInt16, to out: inout [UInt8]) {
        appendHeader(type: typeStdout, requestID: requestID, contentLength: 0, to: &out)
        appendHeader(type: typeEndRequest, requestID: requestID, contentLength: 8, to: &out)
        out.append(contentsOf: [0, 0, 0, 0, 0 /* FCGI_REQUEST_COMPLETE */, 0, 0, 0])
    }

    static func padding(_ length: Int) -> Int { (8 - length % 8) % 8 }

    static func appendHeader(type: UInt8, requestID: UInt16, contentLength: Int, to out: inout [UInt8]) {
        out.append(contentsOf: [
            version, type, UInt8(requestID >> 8), UInt8(requestID & 0xFF),
            UInt8(contentLength >> 8), UInt8(contentLength & 0xFF), UInt8(padding(contentLength)), 0,
        ])
    }
}
