import CurbsideWire

/// What a recipient decodes from the relay (a sealed envelope) and, once it decrypts, from a sender it may not
/// trust yet (a message with its content). Whatever decodes must re-encode to the same bytes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEnvelope(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let envelope = try? SealedEnvelope(decoding: bytes), envelope.encoded != bytes {
        fatalError("a sealed envelope decodes but re-encodes differently")
    }
    if let message = try? Message(decoding: bytes), message.encoded != bytes {
        fatalError("a message decodes but re-encodes differently")
    }
    return 0
}
