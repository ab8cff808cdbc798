/// A number two providers read to each other to check they hold each other's real identity keys
/// (spec/safety-number.md).
///
/// Sixty digits: thirty derived from each party's identity key and handle, the smaller half first, so both sides
/// compute the same number. Shown as twelve groups of five digits.
public struct SafetyNumber: Sendable, Hashable, CustomStringConvertible {
    static let label = Array("curbside/v1/safety-number\0".utf8)
    static let digitsPerParty = 30

    /// The sixty digits, with no spaces.
    public let digits: String

    /// The safety number of the pair; the order of the arguments does not matter.
    public init(_ a: Party, _ b: Party) {
        let first = Self.partyDigits(a)
        let second = Self.partyDigits(b)
        digits = first <= second ? first + second : second + first
    }

    /// The thirty digits `party` contributes to every safety number it has: the half its colleagues see in theirs
    /// (`curbside whoami` prints one's own).
    public static func half(of party: Party) -> String { partyDigits(party) }

    /// The thirty digits of one party: SHA-256(label ‖ identity_key ‖ len(handle) ‖ handle), whose first 30 bytes
    /// are read as six 40-bit big-endian integers, each reduced modulo 100000 and written as five digits.
    static func partyDigits(_ party: Party) -> String {
        var writer = WireWriter()
        writer.writeBytes(label)
        writer.writeBytes(party.identityKey.rawRepresentation)
        party.handle.encode(to: &writer)
        let digest = SHA256.hash(writer.bytes)
        var out = ""
        for chunk in 0..<6 {
            var value: UInt64 = 0
            for byte in digest[(chunk * 5)..<(chunk * 5 + 5)] { value = value << 8 | UInt64(byte) }
            let group = String(value % 100_000)
            out += String(repeating: "0", count: 5 - group.count) + group
        }
        return out
    }

    /// Twelve groups of five digits.
    public var groups: [String] {
        stride(from: 0, to: digits.count, by: 5).map { start in
            let from = digits.index(digits.startIndex, offsetBy: start)
            return String(digits[from..<digits.index(from, offsetBy: 5)])
        }
    }

    /// Three lines of four groups, the form to read aloud.
    public var displayLines: [String] {
        stride(from: 0, to: 12, by: 4).map { groups[$0..<($0 + 4)].joined(separator: " ") }
    }

    public var description: String { groups.joined(separator: " ") }
}
