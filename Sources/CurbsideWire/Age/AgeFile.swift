/// The age v1 file format (age-encryption.org/v1) with X25519 recipients, streaming in both directions: bytes go
/// in as they come and whole 64 KiB chunks come out, so memory stays at a few chunks whatever the file's size.

/// Encrypts one file to one X25519 recipient.
///
/// Write `header` first, then what `update` returns for each piece of plaintext, then what `finish` returns.
public struct AgeEncryptor {
    public static let chunkSize = 64 * 1024

    /// The header and the payload nonce: the file's first bytes.
    public let header: [UInt8]
    private let payloadKey: SymmetricKey
    private var counter: UInt64 = 0
    private var pending: [UInt8] = []

    public init(recipient: AgreementKey.Public) throws {
        try self.init(
            recipient: recipient,
            fileKey: .random(count: 16),
            ephemeral: AgreementKey.Private(),
            nonce: secureRandomBytes(count: 16)
        )
    }

    /// Deterministic encryption for test vectors and tests.
    package init(recipient: AgreementKey.Public, fileKey: SecretBytes, ephemeral: AgreementKey.Private, nonce: [UInt8]) throws {
        let share = ephemeral.publicKey.rawRepresentation
        let stanza = try AgeStanza.x25519(
            share: share,
            sharedSecret: try ephemeral.sharedSecret(with: recipient),
            recipient: recipient,
            fileKey: fileKey
        )
        try self.init(stanzas: [stanza], fileKey: fileKey, nonce: nonce)
    }

    /// A file whose header holds `stanzas` in this order, all wrapping `fileKey`: tests and vectors build headers
    /// with several stanzas, or with stanzas no honest sender writes, through it.
    package init(stanzas: [AgeStanza], fileKey: SecretBytes, nonce: [UInt8]) throws {
        var text = Array("age-encryption.org/v1\n".utf8)
        for stanza in stanzas { text += stanza.encoded }
        text += Array("---".utf8)
        let mac = HMACSHA256.authenticationCode(for: text, using: try Self.headerKey(fileKey))
        text += Array(" \(RawBase64.encode(mac))\n".utf8)
        header = text + nonce
        payloadKey = try Self.payloadKey(fileKey, nonce: nonce)
        pending.reserveCapacity(Self.chunkSize)
    }

    /// Ciphertext of every chunk that is complete and known not to be the last.
    public mutating func update(_ plaintext: some Collection<UInt8>) throws -> [UInt8] {
        let total = pending.count + plaintext.count
        var out = [UInt8](repeating: 0, count: total > 0 ? (total - 1) / Self.chunkSize * Self.sealedChunkSize : 0)
        let written = try (plaintext.withContiguousStorageIfAvailable { input in
            try out.withUnsafeMutableBytes { try seal(UnsafeRawBufferPointer(input), into: $0) }
        } ?? Array(plaintext).withUnsafeBytes { input in
            try out.withUnsafeMutableBytes { try seal(input, into: $0) }
        })
        precondition(written == out.count, "internal error: age chunk count")
        return out
    }

    static let sealedChunkSize = chunkSize + ChaChaPoly.tagByteCount

    /// The most bytes `update(_:into:)` writes for `count` bytes of plaintext.
    public static func sealedCapacity(forPlaintext count: Int) -> Int {
        (count / chunkSize + 1) * sealedChunkSize
    }

    /// Like `update(_:)`, into `output` instead of a new array: seals every chunk that is complete and known not to be
    /// the last and returns how many bytes of `output` it wrote. `output` holds at least
    /// `sealedCapacity(forPlaintext: plaintext.count)` bytes. Whole chunks are sealed straight from `plaintext`; only a
    /// chunk that spans calls is copied, so a caller that reuses its buffers allocates nothing per chunk.
    public mutating func update(_ plaintext: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> Int {
        precondition(output.count >= Self.sealedCapacity(forPlaintext: plaintext.count), "internal error: age output buffer too small")
        return try seal(plaintext, into: output)
    }

    /// `update(_:into:)` into an `output` that may be just large enough (ChaChaPoly checks each chunk's room).
    private mutating func seal(_ plaintext: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> Int {
        var rest = plaintext
        var written = 0
        while !rest.isEmpty {
            // A chunk is sealed as non-final only once a byte after it is known to exist.
            if pending.count == Self.chunkSize {
                let target = UnsafeMutableRawBufferPointer(rebasing: output[written...])
                try pending.withUnsafeBytes { chunk in
                    try ChaChaPoly.seal(chunk, using: payloadKey, nonce: Self.nonce(counter, last: false), into: target)
                }
                counter += 1
                written += Self.sealedChunkSize
                secureZero(&pending)
                pending.removeAll(keepingCapacity: true)
            }
            if pending.isEmpty, rest.count > Self.chunkSize {
                let target = UnsafeMutableRawBufferPointer(rebasing: output[written...])
                try ChaChaPoly.seal(
                    UnsafeRawBufferPointer(rebasing: rest[..<Self.chunkSize]),
                    using: payloadKey,
                    nonce: Self.nonce(counter, last: false),
                    into: target
                )
                counter += 1
                written += Self.sealedChunkSize
                rest = UnsafeRawBufferPointer(rebasing: rest[Self.chunkSize...])
                continue
            }
            let taken = min(Self.chunkSize - pending.count, rest.count)
            pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: rest[..<taken]).assumingMemoryBound(to: UInt8.self))
            rest = UnsafeRawBufferPointer(rebasing: rest[taken...])
        }
        return written
    }

    /// The final chunk (empty only if the whole file is).
    public mutating func finish() throws -> [UInt8] {
        defer { secureZero(&pending) }
        return try seal(pending, last: true)
    }

    /// Seals `chunk` as the next chunk, final or not, whatever its size (tests build malformed files with it).
    package mutating func seal(_ chunk: [UInt8], last: Bool) throws -> [UInt8] {
        defer { counter += 1 }
        return try ChaChaPoly.seal(chunk, using: payloadKey, nonce: Self.nonce(counter, last: last))
    }

    static func nonce(_ counter: UInt64, last: Bool) -> [UInt8] {
        [0, 0, 0] + (0..<8).map { UInt8(truncatingIfNeeded: counter >> (56 - 8 * UInt64($0))) } + [last ? 1 : 0]
    }

    static func headerKey(_ fileKey: SecretBytes) throws -> SymmetricKey {
        SymmetricKey(try HKDF.deriveKey(inputKeyMaterial: fileKey, salt: [], info: Array("header".utf8), outputByteCount: 32))
    }

    static func payloadKey(_ fileKey: SecretBytes, nonce: [UInt8]) throws -> SymmetricKey {
        SymmetricKey(try HKDF.deriveKey(inputKeyMaterial: fileKey, salt: nonce, info: Array("payload".utf8), outputByteCount: 32))
    }
}

/// One recipient stanza of an age header: its arguments and its body (spec/attachments.md §Header).
package struct AgeStanza: Sendable {
    package var arguments: [String]
    package var body: [UInt8]

    package init(arguments: [String], body: [UInt8]) {
        self.arguments = arguments
        self.body = body
    }

    /// An X25519 stanza wrapping `fileKey` under the wrap key derived from `sharedSecret`; taking the shared secret
    /// rather than computing it lets vectors write the stanza of a low-order share, whose shared secret is zero.
    package static func x25519(share: [UInt8], sharedSecret: SecretBytes, recipient: AgreementKey.Public, fileKey: SecretBytes) throws -> Self {
        let wrapKey = try x25519WrapKey(sharedSecret: sharedSecret, share: share, recipient: recipient)
        let body = try ChaChaPoly.seal(fileKey.copiedBytes, using: wrapKey, nonce: [UInt8](repeating: 0, count: 12))
        return Self(arguments: ["X25519", RawBase64.encode(share)], body: body)
    }

    /// HKDF-SHA-256(ikm = shared secret, salt = share ‖ recipient, info = "age-encryption.org/v1/X25519").
    static func x25519WrapKey(sharedSecret: SecretBytes, share: [UInt8], recipient: AgreementKey.Public) throws(CryptoError) -> SymmetricKey {
        SymmetricKey(
            try HKDF.deriveKey(
                inputKeyMaterial: sharedSecret,
                salt: share + recipient.rawRepresentation,
                info: Array("age-encryption.org/v1/X25519".utf8),
                outputByteCount: 32
            )
        )
    }

    /// The argument line and the body wrapped at 64 columns, ending with a line shorter than 64 (maybe empty).
    package var encoded: [UInt8] {
        let text = Array(RawBase64.encode(body).utf8)
        var out = Array("-> \(arguments.joined(separator: " "))\n".utf8)
        var offset = 0
        while true {
            let line = text[offset..<min(offset + 64, text.count)]
            out += line + [UInt8(ascii: "\n")]
            offset += line.count
            if line.count < 64 { return out }
        }
    }
}

/// Decrypts one age file with an X25519 identity, as its bytes arrive.
///
/// Feed every byte to `update` (which returns the plaintext of each chunk verified so far), then call `finish`,
/// which returns the last chunk's plaintext or throws if the file was cut short. Nothing unverified is returned.
public struct AgeDecryptor {
    /// A header larger than this is refused before it is parsed (ours are under 200 bytes).
    public static let maximumHeaderSize = 16 * 1024
    static let sealedChunkSize = AgeEncryptor.chunkSize + ChaChaPoly.tagByteCount

    private let identity: AgreementKey.Private
    private var buffer: [UInt8] = []
    private var payloadKey: SymmetricKey?
    private var counter: UInt64 = 0

    public init(identity: AgreementKey.Private) {
        self.identity = identity
    }

    public mutating func update(_ bytes: some Collection<UInt8>) throws(AgeError) -> [UInt8] {
        // Once the header is read the plaintext's size is known exactly; before, a bound.
        let total = buffer.count + bytes.count
        let capacity = payloadKey == nil
            ? Self.plaintextCapacity(forFileBytes: bytes.count)
            : (total > 0 ? (total - 1) / Self.sealedChunkSize * AgeEncryptor.chunkSize : 0)
        var out = [UInt8](repeating: 0, count: capacity)
        var failure: AgeError?
        let written = (bytes.withContiguousStorageIfAvailable { input in
            out.withUnsafeMutableBytes { output in
                do throws(AgeError) { return try decrypt(UnsafeRawBufferPointer(input), into: output) } catch {
                    failure = error
                    return 0
                }
            }
        } ?? Array(bytes).withUnsafeBytes { input in
            out.withUnsafeMutableBytes { output in
                do throws(AgeError) { return try decrypt(input, into: output) } catch {
                    failure = error
                    return 0
                }
            }
        })
        if let failure { throw failure }
        out.removeLast(out.count - written)
        return out
    }

    /// The most plaintext `update(_:into:)` writes for `count` more bytes of the file.
    public static func plaintextCapacity(forFileBytes count: Int) -> Int {
        (count / sealedChunkSize + 2) * AgeEncryptor.chunkSize
    }

    /// Like `update(_:)`, into `output` instead of a new array: writes the plaintext of every chunk verified so far
    /// and returns how many bytes of `output` it wrote. `output` holds at least
    /// `plaintextCapacity(forFileBytes: bytes.count)` bytes. Whole chunks are opened straight from `bytes`; only a
    /// chunk that spans calls is copied, so a caller that reuses its buffers allocates nothing per chunk. Nothing
    /// unverified is written.
    public mutating func update(_ bytes: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws(AgeError) -> Int {
        precondition(output.count >= Self.plaintextCapacity(forFileBytes: bytes.count), "internal error: age output buffer too small")
        return try decrypt(bytes, into: output)
    }

    /// `update(_:into:)` into an `output` that may be just large enough (ChaChaPoly checks each chunk's room).
    private mutating func decrypt(_ bytes: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws(AgeError) -> Int {
        guard payloadKey == nil else { return try openChunks(bytes, into: output) }
        buffer.append(contentsOf: bytes.assumingMemoryBound(to: UInt8.self))
        guard try readHeader() else { return 0 }
        // What followed the nonce is the start of the payload: it goes through the chunks like any later bytes.
        let payload = buffer
        buffer = []
        buffer.reserveCapacity(Self.sealedChunkSize)
        var failure: AgeError?
        let written = payload.withUnsafeBytes { payload in
            do throws(AgeError) { return try openChunks(payload, into: output) } catch {
                failure = error
                return 0
            }
        }
        if let failure { throw failure }
        return written
    }

    private mutating func openChunks(_ bytes: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws(AgeError) -> Int {
        var rest = bytes
        var written = 0
        // The chunk at the end may be the last: it is held until more bytes or `finish` say which.
        while !rest.isEmpty {
            if buffer.count == Self.sealedChunkSize {
                let target = UnsafeMutableRawBufferPointer(rebasing: output[written...])
                guard buffer.withUnsafeBytes({ open($0, last: false, into: target) }) else {
                    throw refusal(openedAsLast: buffer.withUnsafeBytes { open($0, last: true, into: target) }, target)
                }
                counter += 1
                written += AgeEncryptor.chunkSize
                buffer.removeAll(keepingCapacity: true)
            }
            if buffer.isEmpty, rest.count > Self.sealedChunkSize {
                let chunk = UnsafeRawBufferPointer(rebasing: rest[..<Self.sealedChunkSize])
                let target = UnsafeMutableRawBufferPointer(rebasing: output[written...])
                guard open(chunk, last: false, into: target) else {
                    throw refusal(openedAsLast: open(chunk, last: true, into: target), target)
                }
                counter += 1
                written += AgeEncryptor.chunkSize
                rest = UnsafeRawBufferPointer(rebasing: rest[Self.sealedChunkSize...])
                continue
            }
            let taken = min(Self.sealedChunkSize - buffer.count, rest.count)
            buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: rest[..<taken]).assumingMemoryBound(to: UInt8.self))
            rest = UnsafeRawBufferPointer(rebasing: rest[taken...])
        }
        return written
    }

    /// Why a chunk that does not open as non-final is refused: it opens as the final one (its plaintext is wiped from
    /// `target`, nothing refused is handed out), or not at all.
    private func refusal(openedAsLast: Bool, _ target: UnsafeMutableRawBufferPointer) -> AgeError {
        guard openedAsLast else { return AgeError(.decryptionFailed, "chunk \(counter) does not decrypt") }
        UnsafeMutableRawBufferPointer(rebasing: target[..<AgeEncryptor.chunkSize]).initializeMemory(as: UInt8.self, repeating: 0)
        return AgeError(.chunkAfterLast, "data follows the final chunk \(counter)")
    }

    private func open(_ chunk: UnsafeRawBufferPointer, last: Bool, into output: UnsafeMutableRawBufferPointer) -> Bool {
        guard let payloadKey else { return false }
        return (try? ChaChaPoly.open(chunk, using: payloadKey, nonce: AgeEncryptor.nonce(counter, last: last), into: output)) == true
    }

    public mutating func finish() throws(AgeError) -> [UInt8] {
        guard payloadKey != nil else {
            throw AgeError(.truncated, "the file ends inside its header or nonce")
        }
        guard buffer.count >= ChaChaPoly.tagByteCount else {
            throw AgeError(.truncated, "the file ends without a final chunk")
        }
        guard let plaintext = open(buffer, last: true) else {
            if open(buffer, last: false) != nil {
                throw AgeError(.truncated, "the file ends after chunk \(counter), which is not the final one")
            }
            throw AgeError(.decryptionFailed, "the final chunk \(counter) does not decrypt")
        }
        if plaintext.isEmpty, counter > 0 {
            throw AgeError(.emptyFinalChunk, "the final chunk \(counter) is empty")
        }
        buffer = []
        return plaintext
    }

    private func open(_ chunk: [UInt8], last: Bool) -> [UInt8]? {
        guard let payloadKey else { return nil }
        return try? ChaChaPoly.open(chunk, using: payloadKey, nonce: AgeEncryptor.nonce(counter, last: last))
    }

    /// Parses and checks the header once it and the nonce are complete; false while more bytes are needed.
    private mutating func readHeader() throws(AgeError) -> Bool {
        let marker = Array("\n--- ".utf8)
        let searched = buffer.prefix(Self.maximumHeaderSize + marker.count)
        guard let markerStart = searched.firstRange(of: marker)?.lowerBound else {
            if buffer.count > Self.maximumHeaderSize { throw AgeError(.malformedHeader, "no header end within \(Self.maximumHeaderSize) bytes") }
            if buffer.count >= 21, !buffer.starts(with: Array("age-encryption.org/".utf8)) {
                throw AgeError(.malformedHeader, "not an age file")
            }
            return false
        }
        let macStart = markerStart + marker.count
        guard buffer.count >= macStart + 43 + 1 + 16 else { return false }
        guard buffer[macStart + 43] == UInt8(ascii: "\n"), let mac = RawBase64.decode(buffer[macStart..<(macStart + 43)]),
            mac.count == 32
        else {
            throw AgeError(.malformedHeader, "the MAC line is not 43 base64 characters")
        }
        let signed = Array(buffer[..<(markerStart + 4)])  // up to and including "---"
        let lines = buffer[..<markerStart].split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map(Array.init)
        guard let version = lines.first, version.starts(with: Array("age-encryption.org/".utf8)) else {
            throw AgeError(.malformedHeader, "no version line")
        }
        guard version == Array("age-encryption.org/v1".utf8) else {
            throw AgeError(.unsupportedVersion, "version \(String(decoding: version.dropFirst(19), as: UTF8.self))")
        }
        let stanzas = try Self.stanzas(lines.dropFirst())
        guard !stanzas.isEmpty else { throw AgeError(.malformedHeader, "no recipient stanza") }
        // Every X25519 stanza is checked, not only those before the one that opens: c2sp.org/age says "If the shared
        // secret is all 0x00 bytes, the identity implementation MUST abort", and a low-order share anywhere in the
        // header fails the file, whatever the order of its stanzas (spec/attachments.md §Header).
        var fileKey: SecretBytes?
        for stanza in stanzas where stanza.arguments.first == "X25519" {
            guard stanza.arguments.count == 2, let share = RawBase64.decode(Array(stanza.arguments[1].utf8)), share.count == 32 else {
                throw AgeError(.malformedHeader, "an X25519 stanza's share is not 32 bytes")
            }
            guard stanza.body.count == 32 else { throw AgeError(.malformedHeader, "an X25519 stanza's body is not 32 bytes") }
            let shared: SecretBytes
            do {
                shared = try identity.sharedSecret(with: AgreementKey.Public(rawRepresentation: share))
            } catch {
                // libsodium refuses exactly the shares whose result is all zeros (small order, or a non-canonical
                // encoding of one); the share is public input, so it may be quoted.
                throw AgeError(.malformedHeader, "an X25519 stanza's share \(RawBase64.encode(share)) gives an all-zero shared secret")
            }
            guard fileKey == nil,
                let wrapKey = try? AgeStanza.x25519WrapKey(sharedSecret: shared, share: share, recipient: identity.publicKey),
                var key = try? ChaChaPoly.open(stanza.body, using: wrapKey, nonce: [UInt8](repeating: 0, count: 12))
            else { continue }
            fileKey = SecretBytes(key)
            secureZero(&key)
        }
        guard let fileKey else { throw AgeError(.noMatchingStanza, "no X25519 stanza is for this identity") }
        guard let headerKey = try? AgeEncryptor.headerKey(fileKey),
            HMACSHA256.isValidAuthenticationCode(mac, for: signed, using: headerKey)
        else {
            throw AgeError(.badHeaderMAC, "the header MAC does not verify")
        }
        let nonceStart = macStart + 44
        payloadKey = try? AgeEncryptor.payloadKey(fileKey, nonce: Array(buffer[nonceStart..<(nonceStart + 16)]))
        buffer.removeFirst(nonceStart + 16)
        return true
    }

    private static func stanzas(_ lines: ArraySlice<[UInt8]>) throws(AgeError) -> [AgeStanza] {
        var out: [AgeStanza] = []
        var index = lines.startIndex
        while index < lines.endIndex {
            let line = lines[index]
            guard line.starts(with: Array("-> ".utf8)) else { throw AgeError(.malformedHeader, "a stanza must start with \"-> \"") }
            let arguments = line.dropFirst(3).split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
            guard !arguments.isEmpty, arguments.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0 >= 33 && $0 <= 126 } }) else {
                throw AgeError(.malformedHeader, "a stanza argument is empty or not printable")
            }
            index += 1
            var body: [UInt8] = []
            while true {
                guard index < lines.endIndex else { throw AgeError(.malformedHeader, "a stanza body does not end with a short line") }
                let bodyLine = lines[index]
                index += 1
                guard bodyLine.count <= 64, let decoded = RawBase64.decode(bodyLine) else {
                    throw AgeError(.malformedHeader, "a stanza body line is not canonical base64 of at most 64 columns")
                }
                body += decoded
                if bodyLine.count < 64 { break }
            }
            out.append(AgeStanza(arguments: arguments.map { String(decoding: $0, as: UTF8.self) }, body: body))
        }
        return out
    }
}
