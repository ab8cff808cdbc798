import CurbsideWire

extension VectorGenerator {
    static func ageVectors() -> VectorFileBuilder {
        var file = VectorFileBuilder(
            name: "age.json",
            description: """
                Attachments in the age v1 format (spec/attachments.md). Decrypt `file` with the X25519 identity \
                `identity` (AGE-SECRET-KEY-1…). valid: it gives exactly `plaintext`, and encrypting `plaintext` to the \
                identity's recipient with `file_key`, `ephemeral_secret` and `payload_nonce` reproduces `file`. \
                Otherwise decryption fails with `expect`; some of those files hold several stanzas.
                """
        )
        let identity = Fixtures.agreementKey("image-1/age-identity")
        let other = Fixtures.agreementKey("image-2/age-identity")
        let chunk = AgeEncryptor.chunkSize

        func plaintext(_ size: Int) -> [UInt8] {
            var out: [UInt8] = []
            var block = SHA256.hash(Array("curbside-vectors/age-plaintext".utf8))
            while out.count < size {
                out += block
                block = SHA256.hash(block)
            }
            return Array(out.prefix(size))
        }
        func encryptor(_ label: String, to recipient: AgreementKey.Public = identity.publicKey) -> (AgeEncryptor, [(String, JSON)]) {
            let fileKey = SecretBytes(Fixtures.secret("age/\(label)/file-key").copiedBytes.prefix(16))
            let ephemeral = Fixtures.agreementKey("age/\(label)/ephemeral")
            let nonce = Array(Fixtures.secret("age/\(label)/nonce").copiedBytes.prefix(16))
            let encryptor = try! AgeEncryptor(recipient: recipient, fileKey: fileKey, ephemeral: ephemeral, nonce: nonce)
            return (encryptor, [
                ("file_key", .hex(fileKey.copiedBytes)),
                ("ephemeral_secret", .hex(ephemeral.rawRepresentation.copiedBytes)),
                ("payload_nonce", .hex(nonce)),
            ])
        }
        func encrypt(_ label: String, _ bytes: [UInt8], to recipient: AgreementKey.Public = identity.publicKey) -> ([UInt8], [(String, JSON)]) {
            var (encryptor, inputs) = encryptor(label, to: recipient)
            let body = try! encryptor.update(bytes)
            return (encryptor.header + body + (try! encryptor.finish()), inputs)
        }
        func add(_ name: String, file bytes: [UInt8], plaintext: [UInt8]? = nil, inputs: [(String, JSON)] = [], identity key: AgreementKey.Private = identity, _ expect: String) {
            var fields: [(String, JSON)] = [("identity", .string(AgeKeys.encode(identity: key))), ("file", .hex(bytes))]
            if let plaintext { fields.append(("plaintext", .hex(plaintext))) }
            file.add(name, fields + inputs, expect: expect)
        }

        for (name, size) in [("empty file", 0), ("one byte", 1), ("one full chunk", chunk), ("a chunk and one byte", chunk + 1)] {
            let bytes = plaintext(size)
            let (encrypted, inputs) = encrypt(name, bytes)
            add(name, file: encrypted, plaintext: bytes, inputs: inputs, "valid")
        }
        let bytes = plaintext(chunk + 100)
        let (good, _) = encrypt("two chunks", bytes)
        let headerEnd = good.firstRange(of: Array("\n--- ".utf8))!.lowerBound + 5 + 43 + 1
        let payload = headerEnd + 16
        add("encrypted to another identity", file: good, identity: other, "age_no_matching_identity")
        add("a flipped byte in the first chunk", file: good.replacing(at: payload + 10, with: [good[payload + 10] ^ 1]), "age_chunk_decryption_failed")
        add("a flipped byte in the last chunk", file: good.replacing(at: good.count - 1, with: [good[good.count - 1] ^ 1]), "age_chunk_decryption_failed")
        add("cut after the first chunk", file: Array(good.prefix(payload + chunk + 16)), "age_truncated")
        add("cut inside the nonce", file: Array(good.prefix(headerEnd + 8)), "age_truncated")
        let macByte = good[headerEnd - 2] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        add("a changed header MAC", file: good.replacing(at: headerEnd - 2, with: [macByte]), "age_bad_header_mac")
        add("version v2", file: Array("age-encryption.org/v2".utf8) + good.dropFirst(21), "age_unsupported_version")
        let (full, _) = encrypt("one full chunk", plaintext(chunk))
        add("bytes after a full final chunk", file: full + [0, 1, 2], "age_chunk_after_last")
        var (emptyFinal, _) = encryptor("empty final chunk")
        let emptyFinalFile = emptyFinal.header + (try! emptyFinal.seal(plaintext(chunk), last: false)) + (try! emptyFinal.seal([], last: true))
        add("an empty final chunk after a full one", file: emptyFinalFile, "age_empty_final_chunk")
        // A padded base64 share in the stanza: non-canonical, refused before anything is decrypted.
        let text = Array(good[..<headerEnd])
        let shareLine = text.firstRange(of: Array("-> X25519 ".utf8))!.upperBound
        let padded = Array(text[..<(shareLine + 43)]) + Array("=".utf8) + Array(good[(shareLine + 43)...])
        add("a padded stanza argument", file: padded, "age_malformed_header")

        // X25519 stanzas whose share is a low-order point: X25519(identity, share) is all zeros whatever the
        // identity, so the stanza's wrap key is known to anyone who knows the recipient. Each body really wraps the
        // file key under that key (what an attacker would write); the whole file fails wherever the stanza stands.
        let p = [0xED] + [UInt8](repeating: 0xFF, count: 30) + [0x7F]  // 2^255 - 19, a non-canonical 0
        let orderEight = [UInt8](hexString: "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")!
        let lowOrder: [(String, [UInt8], String)] = [
            ("an all-zero share before a valid stanza", [UInt8](repeating: 0, count: 32), "before"),
            ("a share of order 8 after a valid stanza", orderEight, "after"),
            ("a share equal to 2^255-19 before a valid stanza", p, "before"),
            ("an all-zero share alone", [UInt8](repeating: 0, count: 32), "alone"),
        ]
        for (name, share, position) in lowOrder {
            let fileKey = SecretBytes(Fixtures.secret("age/\(name)/file-key").copiedBytes.prefix(16))
            let ephemeral = Fixtures.agreementKey("age/\(name)/ephemeral")
            let nonce = Array(Fixtures.secret("age/\(name)/nonce").copiedBytes.prefix(16))
            let valid = try! AgeStanza.x25519(
                share: ephemeral.publicKey.rawRepresentation,
                sharedSecret: try! ephemeral.sharedSecret(with: identity.publicKey),
                recipient: identity.publicKey,
                fileKey: fileKey
            )
            let weak = try! AgeStanza.x25519(
                share: share,
                sharedSecret: SecretBytes([UInt8](repeating: 0, count: 32)),
                recipient: identity.publicKey,
                fileKey: fileKey
            )
            let stanzas = position == "before" ? [weak, valid] : position == "after" ? [valid, weak] : [weak]
            var encryptor = try! AgeEncryptor(stanzas: stanzas, fileKey: fileKey, nonce: nonce)
            let body = try! encryptor.update(plaintext(100))
            add(name, file: encryptor.header + body + (try! encryptor.finish()), "age_malformed_header")
        }
        return file
    }
}
