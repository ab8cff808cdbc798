import CurbsideTestSupport
import Testing

@testable import CurbsideWire

private func hex(_ text: String) -> [UInt8] { [UInt8](hexString: text)! }

@Suite("libsodium layer")
struct SodiumTests {
    @Test func secretBytesCompareInConstantTimeAndRedact() {
        let a = SecretBytes([1, 2, 3])
        #expect(a == SecretBytes([1, 2, 3]))
        #expect(a != SecretBytes([1, 2, 4]))
        #expect(a != SecretBytes([1, 2]))
        #expect("\(a)" == "SecretBytes(3 bytes)")
        #expect(!"\(SymmetricKey(rawRepresentation: [0xAB, 0xCD]))".contains("abcd"))
        #expect(SecretBytes.random(count: 32) != SecretBytes.random(count: 32))
    }

    @Test func constantTimeEqualsHandlesLengthsAndEmpty() {
        #expect(constantTimeEquals([], []))
        #expect(!constantTimeEquals([1], []))
        #expect(constantTimeEquals([9, 9], [9, 9]))
        #expect(!constantTimeEquals([9, 9], [9, 8]))
    }

    @Test func sha256KnownAnswers() {
        // FIPS 180-2 examples.
        #expect(SHA256.hash(Array("abc".utf8)).hexString == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hash([]).hexString == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        var hasher = SHA256()
        hasher.update(Array("ab".utf8))
        hasher.update(Array("c".utf8))
        #expect(hasher.finalize() == SHA256.hash(Array("abc".utf8)))
    }

    /// RFC 4231 test cases 1 and 2.
    @Test func hmacSHA256KnownAnswers() {
        let key1 = SymmetricKey(rawRepresentation: [UInt8](repeating: 0x0b, count: 20))
        let tag1 = HMACSHA256.authenticationCode(for: Array("Hi There".utf8), using: key1)
        #expect(tag1.hexString == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        let key2 = SymmetricKey(rawRepresentation: Array("Jefe".utf8))
        let message2 = Array("what do ya want for nothing?".utf8)
        let tag2 = HMACSHA256.authenticationCode(for: message2, using: key2)
        #expect(tag2.hexString == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        #expect(HMACSHA256.isValidAuthenticationCode(tag2, for: message2, using: key2))
        #expect(!HMACSHA256.isValidAuthenticationCode(tag2.flipped(at: 31), for: message2, using: key2))
    }

    struct HKDFCase: Sendable, CustomTestStringConvertible {
        let name: String, ikm: String, salt: String, info: String, length: Int, prk: String, okm: String
        var testDescription: String { name }
    }

    /// RFC 5869 Appendix A, test cases 1–3 (the SHA-256 ones).
    static let rfc5869: [HKDFCase] = [
        HKDFCase(
            name: "A.1 basic",
            ikm: "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
            salt: "000102030405060708090a0b0c",
            info: "f0f1f2f3f4f5f6f7f8f9",
            length: 42,
            prk: "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
            okm: "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        ),
        HKDFCase(
            name: "A.2 long inputs",
            ikm: "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
                + "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
                + "404142434445464748494a4b4c4d4e4f",
            salt: "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
                + "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
                + "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
            info: "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
                + "d0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeef"
                + "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
            length: 82,
            prk: "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
            okm: "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
                + "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
                + "cc30c58179ec3e87c14c01d5c1f3434f1d87"
        ),
        HKDFCase(
            name: "A.3 empty salt and info",
            ikm: "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
            salt: "",
            info: "",
            length: 42,
            prk: "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
            okm: "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
        ),
    ]

    @Test(arguments: rfc5869)
    func hkdfRFC5869(_ c: HKDFCase) throws {
        let prk = HKDF.extract(salt: hex(c.salt), inputKeyMaterial: SecretBytes(hex(c.ikm)))
        #expect(prk.copiedBytes.hexString == c.prk)
        let okm = try HKDF.expand(pseudoRandomKey: prk, info: hex(c.info), outputByteCount: c.length)
        #expect(okm.copiedBytes.hexString == c.okm)
        let oneCall = try HKDF.deriveKey(
            inputKeyMaterial: SecretBytes(hex(c.ikm)),
            salt: hex(c.salt),
            info: hex(c.info),
            outputByteCount: c.length
        )
        #expect(oneCall == okm)
    }

    @Test func hkdfRefusesMoreThan255Blocks() throws {
        let prk = HKDF.extract(salt: [], inputKeyMaterial: SecretBytes([1]))
        #expect(try HKDF.expand(pseudoRandomKey: prk, info: [], outputByteCount: 255 * 32).count == 255 * 32)
        let error = #expect(throws: CryptoError.self) {
            try HKDF.expand(pseudoRandomKey: prk, info: [], outputByteCount: 255 * 32 + 1)
        }
        #expect(error?.code == .limitExceeded)
    }

    /// RFC 8439 §2.8.2: the AEAD example.
    @Test func chaChaPolyRFC8439() throws {
        let key = SymmetricKey(rawRepresentation: hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"))
        let nonce = hex("070000004041424344454647")
        let aad = hex("50515253c0c1c2c3c4c5c6c7")
        let plaintext = Array(
            "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it."
                .utf8
        )
        let sealed = try ChaChaPoly.seal(plaintext, using: key, nonce: nonce, authenticating: aad)
        #expect(sealed.suffix(16).map { $0 } == hex("1ae10b594f09e26a7e902ecbd0600691"))
        #expect(Array(sealed.prefix(16)) == hex("d31a8d34648e60db7b86afbc53ef7ec2"))
        #expect(try ChaChaPoly.open(sealed, using: key, nonce: nonce, authenticating: aad) == plaintext)

        for tampered in [sealed.flipped(at: 0), sealed.flipped(at: sealed.count - 1)] {
            let error = #expect(throws: CryptoError.self) {
                try ChaChaPoly.open(tampered, using: key, nonce: nonce, authenticating: aad)
            }
            #expect(error?.code == .authenticationFailure)
        }
        let wrongAAD = #expect(throws: CryptoError.self) {
            try ChaChaPoly.open(sealed, using: key, nonce: nonce, authenticating: aad.flipped(at: 0))
        }
        #expect(wrongAAD?.code == .authenticationFailure)
        let badNonce = #expect(throws: CryptoError.self) {
            try ChaChaPoly.seal(plaintext, using: key, nonce: [0], authenticating: aad)
        }
        #expect(badNonce?.code == .invalidLength)
    }

    /// RFC 8032 §7.1 test 1 (empty message) and test 2 (one byte).
    @Test func ed25519RFC8032() throws {
        let key1 = try SigningKey(seed: SecretBytes(hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")))
        #expect(key1.verifyingKey.rawRepresentation.hexString == "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        let signature1 = key1.signature(for: [])
        #expect(
            signature1.hexString
                == "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        )
        #expect(key1.verifyingKey.isValidSignature(signature1, for: []))
        #expect(!key1.verifyingKey.isValidSignature(signature1, for: [0]))
        #expect(!key1.verifyingKey.isValidSignature(signature1.flipped(at: 10), for: []))

        let key2 = try SigningKey(seed: SecretBytes(hex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")))
        #expect(key2.verifyingKey.rawRepresentation.hexString == "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
        #expect(!key2.verifyingKey.isValidSignature(signature1, for: []))
        #expect(key2.seed.copiedBytes.hexString == "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
    }

    @Test func ed25519RefusesBadKeys() {
        let short = #expect(throws: CryptoError.self) { try VerifyingKey(rawRepresentation: [1, 2, 3]) }
        #expect(short?.code == .invalidLength)
        // The identity point has order 1: any "signature" could be made to verify under it.
        let identity = #expect(throws: CryptoError.self) {
            try VerifyingKey(rawRepresentation: [1] + [UInt8](repeating: 0, count: 31))
        }
        #expect(identity?.code == .invalidPublicKey)
        let badSeed = #expect(throws: CryptoError.self) { try SigningKey(seed: SecretBytes([1])) }
        #expect(badSeed?.code == .invalidLength)
    }

    /// RFC 7748 §6.1: Alice and Bob.
    @Test func x25519RFC7748() throws {
        let alice = try AgreementKey.Private(
            rawRepresentation: SecretBytes(hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
        )
        let bob = try AgreementKey.Private(
            rawRepresentation: SecretBytes(hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"))
        )
        #expect(alice.publicKey.rawRepresentation.hexString == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        #expect(bob.publicKey.rawRepresentation.hexString == "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
        let shared = try alice.sharedSecret(with: bob.publicKey)
        #expect(shared.copiedBytes.hexString == "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
        #expect(shared == (try bob.sharedSecret(with: alice.publicKey)))
    }

    @Test func x25519RefusesSmallOrderPoints() throws {
        let me = AgreementKey.Private()
        // 0 and 1 are small-order u-coordinates: the exchange would give all zeros.
        for u: [UInt8] in [[UInt8](repeating: 0, count: 32), [1] + [UInt8](repeating: 0, count: 31)] {
            let error = #expect(throws: CryptoError.self) {
                try me.sharedSecret(with: AgreementKey.Public(rawRepresentation: u))
            }
            #expect(error?.code == .weakPublicKey)
        }
        let short = #expect(throws: CryptoError.self) { try AgreementKey.Public(rawRepresentation: [1]) }
        #expect(short?.code == .invalidLength)
    }
}

extension Array where Element == UInt8 {
    func flipped(at index: Int, by mask: UInt8 = 0x01) -> [UInt8] {
        var copy = self
        copy[index] ^= mask
        return copy
    }
}
