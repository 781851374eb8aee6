/// Server-Sent Events framing (the WHATWG event-stream format), as Herald writes it.
public enum ServerSentEvents {
    /// One event: `event:`, then `id:`, then the data split into `data:` lines, then a blank line.
    ///
    /// CR and CRLF become LF first (a bare CR would end a line for the browser), then every LF
    /// starts a new `data:` line, a trailing empty piece included, so the browser's joined
    /// `data` is exactly `data`.
    public static func event(_ name: String?, id: String? = nil, data: String) -> String {
        // Byte by byte: log chunks are up to 64 KiB and this runs once per chunk per follower.
        var out: [UInt8] = []
        out.reserveCapacity(data.utf8.count + 64)
        if let name { out += "event: \(name)\n".utf8 }
        if let id { out += "id: \(id)\n".utf8 }
        out += "data: ".utf8
        var text = data
        text.withUTF8 { bytes in
            var previousCR = false
            for byte in bytes {
                switch byte {
                case UInt8(ascii: "\r"):
                    out += "\ndata: ".utf8
                    previousCR = true
                case UInt8(ascii: "\n"):
                    if !previousCR { out += "\ndata: ".utf8 }
                    previousCR = false
                default:
                    out.append(byte)
                    previousCR = false
                }
            }
        }
        out += "\n\n".utf8
        return String(decoding: out, as: UTF8.self)
    }

    /// The reconnection delay for the browser.
    public static func retry(milliseconds: Int) -> String { "retry: \(milliseconds)\n\n" }

    /// A comment that keeps proxies and the browser from timing the stream out.
    public static let ping = ": ping\n\n"
}

/// Cuts raw log bytes into text for `log` events without splitting a UTF-8 sequence or a CRLF.
public enum LogChunk {
    /// How many bytes of `bytes` fit in `budget` bytes of `data:` lines once framed.
    ///
    /// Each line end costs a whole `\ndata: ` (7 bytes), so 64 KiB of empty lines would frame to
    /// 448 KiB: a chunk is cut by its framed size, which bounds what a blocked client's outbox holds.
    public static func length(of bytes: ArraySlice<UInt8>, framedWithin budget: Int) -> Int {
        // On the hub thread for every log chunk: a plain loop over the buffer, which even an
        // unoptimised build runs fast (a generic zip over the slice cost the hub hundreds of ms).
        bytes.withUnsafeBufferPointer { buffer in
            var used = 0
            var previousCR = false
            for k in 0..<buffer.count {
                let byte = buffer[k]
                let cost = byte == 0x0D ? 7 : byte == 0x0A ? (previousCR ? 0 : 7) : 1
                if used + cost > budget { return k }
                used += cost
                previousCR = byte == 0x0D
            }
            return buffer.count
        }
    }

    /// The longest prefix of `bytes` that is safe to send now, as text, and how many bytes it used.
    ///
    /// Unless `isFinal`, a trailing CR and a trailing incomplete UTF-8 sequence are held back
    /// for the next chunk: the CR may be half of a CRLF, the sequence may be completed later.
    public static func take(_ bytes: ArraySlice<UInt8>, isFinal: Bool) -> (text: String, consumed: Int) {
        var end = bytes.endIndex
        if !isFinal {
            // Hold back an incomplete UTF-8 sequence at the end (at most 3 bytes).
            var k = end
            var back = 0
            while k > bytes.startIndex, back < 3, bytes[k - 1] & 0xC0 == 0x80 { k -= 1; back += 1 }
            if k > bytes.startIndex {
                let lead = bytes[k - 1]
                let need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1
                if need > 1, back + 1 < need { end = k - 1 }
            }
            if end > bytes.startIndex, bytes[end - 1] == UInt8(ascii: "\r") { end -= 1 }
        }
        let slice = bytes[bytes.startIndex..<end]
        return (String(decoding: slice, as: UTF8.self), slice.count)
    }
}
