import CurbsideDigest
import CurbsideWire
import Testing

@Suite("SHA-256 for files through OpenSSL")
struct FileSHA256Tests {
    static func hex(_ bytes: [UInt8]) -> String { bytes.hexString }

    static func digest(_ bytes: [UInt8]) -> String {
        let hasher = FileSHA256()
        hasher.update(bytes)
        return hex(hasher.finalize())
    }

    /// FIPS 180-4's examples (NIST's SHA-256 example values): empty, "abc", the two-block message, a million "a".
    @Test func knownAnswers() {
        #expect(Self.digest([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(Self.digest(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(
            Self.digest(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        )
        #expect(Self.digest([UInt8](repeating: 0x61, count: 1_000_000)) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// The digest does not depend on how the input is cut: pieces at block edges (63, 64, 65) and odd sizes.
    @Test(arguments: [1, 63, 64, 65, 1000, 65_536, 1 << 20])
    func piecesGiveTheSameDigest(pieceSize: Int) {
        var generator = SystemRandomNumberGenerator()
        let input = (0..<(3 * 65_536 + 17)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let hasher = FileSHA256()
        var offset = 0
        while offset < input.count {
            let end = min(offset + pieceSize, input.count)
            input[offset..<end].withUnsafeBytes { hasher.update($0) }
            offset = end
        }
        #expect(Self.hex(hasher.finalize()) == Self.digest(input))
        // A changed byte changes the digest.
        var changed = input
        changed[input.count / 2] ^= 1
        #expect(Self.digest(changed) != Self.digest(input))
    }

    /// The protocol's other SHA-256 (libsodium's, for keys and envelopes) gives the same digest: attachments hashed
    /// here and ids hashed there can be compared.
    @Test func agreesWithLibsodium() {
        var generator = SystemRandomNumberGenerator()
        for count in [0, 55, 56, 64, 100_003] {
            let input = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
            #expect(Self.digest(input) == Self.hex(SHA256.hash(input)), "\(count) bytes")
            #expect(SHA256Digest.hash(input) == SHA256.hash(input), "one-shot, \(count) bytes")
        }
    }
}
