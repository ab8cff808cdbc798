/// The byte-level mutations the fuzz oracles in `make test` apply to vector byte strings: one to three of a byte
/// flipped, a byte inserted, a byte removed, or the input cut off.
public func mutate(_ input: [UInt8], using generator: inout SplitMix64) -> [UInt8] {
    var bytes = input
    for _ in 0..<Int.random(in: 1...3, using: &generator) {
        switch Int.random(in: 0..<4, using: &generator) {
        case 0 where !bytes.isEmpty:
            bytes[Int.random(in: 0..<bytes.count, using: &generator)] ^= UInt8.random(in: 1...255, using: &generator)
        case 1:
            bytes.insert(UInt8.random(in: 0...255, using: &generator), at: Int.random(in: 0...bytes.count, using: &generator))
        case 2 where !bytes.isEmpty:
            bytes.remove(at: Int.random(in: 0..<bytes.count, using: &generator))
        default:
            bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &generator)))
        }
    }
    return bytes
}
