import CurbsideWire

/// A prekey bundle as a sender receives it from the relay. Whatever decodes must re-encode to the same bytes, and
/// checking its signatures must not trap.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzBundle(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let bundle = try? PrekeyBundle(decoding: bytes) else { return 0 }
    if bundle.encoded != bytes { fatalError("a prekey bundle decodes but re-encodes differently") }
    try? bundle.verify(now: Timestamp(millisecondsSince1970: 0))
    return 0
}
