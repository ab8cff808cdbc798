import CurbsideWire

/// The single-use identity of spec/vectors/age.json, so the seeds decrypt and mutations reach every stage.
let identity = try! AgeKeys.identity("AGE-SECRET-KEY-1FLL49UVECG0ZF7853Y3LHE9J5ES4N60SC4SRVDQF09W02JL2DVCQFY7JQC")

/// An age file as a recipient downloads it: header parsing, the header MAC, the STREAM chunks, fed in two pieces.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAge(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let cut = bytes.isEmpty ? 0 : Int(bytes[0]) * 257 % (bytes.count + 1)
    var decryptor = AgeDecryptor(identity: identity)
    do {
        _ = try decryptor.update(bytes[..<cut])
        _ = try decryptor.update(bytes[cut...])
        _ = try decryptor.finish()
    } catch {}
    return 0
}
