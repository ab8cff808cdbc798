import Foundation

/// A seeded generator for property tests (SplitMix64). Not for keys: only for choosing test inputs.
///
/// The seed comes from `CURBSIDE_TEST_SEED` when set, so a failure can be replayed; otherwise it is random and
/// tests print it with their failures.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public let seed: UInt64
    private var state: UInt64

    public init(seed: UInt64) {
        self.seed = seed
        self.state = seed
    }

    /// A generator seeded from `CURBSIDE_TEST_SEED`, or randomly; prints the seed with the caller's name so any
    /// run can be replayed.
    public static func fromEnvironment(_ caller: String = #function) -> SplitMix64 {
        let seed: UInt64
        if let text = ProcessInfo.processInfo.environment["CURBSIDE_TEST_SEED"], let given = UInt64(text) {
            seed = given
        } else {
            seed = UInt64.random(in: .min ... .max)
        }
        print("\(caller): seed \(seed) (replay with CURBSIDE_TEST_SEED=\(seed))")
        return SplitMix64(seed: seed)
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public mutating func bytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: 0 ... 255, using: &self) }
    }

    /// Text of `count` characters drawn from ASCII letters, spaces and a few multi-byte characters.
    public mutating func text(count: Int) -> String {
        let alphabet: [Character] = Array("abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;-é°µ→\n\t")
        return String((0..<count).map { _ in alphabet.randomElement(using: &self)! })
    }
}
