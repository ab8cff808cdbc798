/// A one-time enrollment code: 100 random bits as 20 Crockford base32 characters, shown in groups of five.
public struct EnrollmentCode: Sendable, Hashable, CustomStringConvertible {
    package static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
    /// The 20 characters, upper case, no separators.
    public let characters: String

    package static func random() -> EnrollmentCode {
        let bytes = secureRandomBytes(count: 20)
        return EnrollmentCode(characters: String(bytes.map { alphabet[Int($0 & 31)] }))
    }

    private init(characters: String) {
        self.characters = characters
    }

    /// Parses a code as a person types it: any case, dashes and spaces ignored, and the look-alikes O→0, I/L→1.
    public init?(_ text: String) {
        var out = ""
        for character in text.uppercased() where character != "-" && character != " " {
            let mapped: Character =
                switch character {
                case "O": "0"
                case "I", "L": "1"
                default: character
                }
            guard Self.alphabet.contains(mapped) else { return nil }
            out.append(mapped)
        }
        guard out.count == 20 else { return nil }
        characters = out
    }

    /// What the store keeps: SHA-256 of the 20 characters.
    package var hash: [UInt8] { SHA256.hash(Array(characters.utf8)) }

    /// XXXXX-XXXXX-XXXXX-XXXXX.
    public var description: String {
        stride(from: 0, to: 20, by: 5).map { start in
            let from = characters.index(characters.startIndex, offsetBy: start)
            return String(characters[from..<characters.index(from, offsetBy: 5)])
        }.joined(separator: "-")
    }
}
