import CurbsideWire

/// The relay's first reader of untrusted bytes: the frame parser (fed in two pieces, cut where the first byte
/// says) and the frame-body decoder of every message type. A decoded message must re-encode to its frame's bytes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrames(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let cut = bytes.isEmpty ? 0 : Int(bytes[0]) % (bytes.count + 1)
    var parser = FrameParser(maximumLength: 1 << 16)
    for piece in [bytes[..<cut], bytes[cut...]] {
        parser.append(piece)
        while true {
            let frame: Frame?
            do { frame = try parser.next() } catch { return 0 }
            guard let frame else { break }
            guard let message = try? RelayMessage(decoding: frame) else { continue }
            let again = message.frame(requestID: frame.requestID)
            if again != frame {
                fatalError("frame type \(frame.type) decodes but re-encodes differently: the encoding is not canonical")
            }
        }
    }
    _ = try? parser.finish()
    return 0
}
