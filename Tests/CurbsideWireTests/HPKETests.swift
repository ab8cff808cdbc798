import CurbsideTestSupport
import Foundation
import Testing

@testable import CurbsideWire

/// One object of the RFC 9180 vector file (field names as the CFRG file spells them).
struct RFC9180Vector: Decodable, Sendable, CustomTestStringConvertible {
    struct Encryption: Decodable, Sendable { let aad: Hex, ct: Hex, nonce: Hex, pt: Hex }
    struct Export: Decodable, Sendable {
        let exporter_context: Hex
        let L: Int
        let exported_value: Hex
    }

    let mode: UInt8
    let kem_id: UInt16
    let kdf_id: UInt16
    let aead_id: UInt16
    let info: Hex
    let ikmE: Hex
    let skRm: Hex
    let skEm: Hex
    let pkRm: Hex
    let pkEm: Hex
    let skSm: Hex?
    let pkSm: Hex?
    let enc: Hex
    let encryptions: [Encryption]
    let exports: [Export]

    var testDescription: String { "mode \(mode) aead \(aead_id)" }

    static func loadAll() throws -> [RFC9180Vector] {
        let url = Repository.references.appendingPathComponent("hpke-rfc9180-x25519-sha256-chacha20poly1305.json")
        return try JSONDecoder().decode([RFC9180Vector].self, from: Data(contentsOf: url))
    }
}

@Suite("HPKE (RFC 9180)")
struct HPKETests {
    /// All four vector objects: base and auth mode, ChaCha20-Poly1305 and export-only.
    @Test(arguments: try RFC9180Vector.loadAll())
    func rfc9180Vector(_ v: RFC9180Vector) throws {
        #expect(v.kem_id == HPKE.Ciphersuite.kemID && v.kdf_id == HPKE.Ciphersuite.kdfID)
        let suite = HPKE.Ciphersuite(aead: try #require(HPKE.Ciphersuite.AEAD(rawValue: v.aead_id)))
        let mode = try #require(HPKE.Mode(rawValue: v.mode))

        // DeriveKeyPair reproduces the ephemeral key.
        let ephemeral = try HPKE.DHKEM.deriveKeyPair(inputKeyMaterial: SecretBytes(v.ikmE.bytes))
        #expect(ephemeral.rawRepresentation.copiedBytes == v.skEm.bytes)
        #expect(ephemeral.publicKey.rawRepresentation == v.pkEm.bytes)

        let recipientKey = try AgreementKey.Private(rawRepresentation: SecretBytes(v.skRm.bytes))
        #expect(recipientKey.publicKey.rawRepresentation == v.pkRm.bytes)
        let senderKey = try v.skSm.map { try AgreementKey.Private(rawRepresentation: SecretBytes($0.bytes)) }
        #expect((mode == .auth) == (senderKey != nil))

        var sender = try HPKE.Sender(
            recipientKey: recipientKey.publicKey,
            ciphersuite: suite,
            info: v.info.bytes,
            senderKey: senderKey,
            ephemeralKeyMaterial: SecretBytes(v.ikmE.bytes)
        )
        #expect(sender.encapsulatedKey == v.enc.bytes)
        var recipient =
            if let senderKey {
                try HPKE.Recipient(
                    privateKey: recipientKey,
                    ciphersuite: suite,
                    info: v.info.bytes,
                    encapsulatedKey: v.enc.bytes,
                    authenticatedBy: senderKey.publicKey
                )
            } else {
                try HPKE.Recipient(privateKey: recipientKey, ciphersuite: suite, info: v.info.bytes, encapsulatedKey: v.enc.bytes)
            }

        // Every encryption, in sequence order: the index is the sequence number.
        var encryptionsRun = 0
        for (sequence, e) in v.encryptions.enumerated() {
            let ct = try sender.seal(e.pt.bytes, authenticating: e.aad.bytes)
            #expect(ct == e.ct.bytes, "seal at sequence \(sequence)")
            #expect(try recipient.open(e.ct.bytes, authenticating: e.aad.bytes) == e.pt.bytes, "open at sequence \(sequence)")
            encryptionsRun += 1
        }
        #expect(encryptionsRun == (suite.aead == .chaCha20Poly1305 ? 257 : 0))

        var exportsRun = 0
        for x in v.exports {
            let fromSender = try sender.exportSecret(context: x.exporter_context.bytes, outputByteCount: x.L)
            let fromRecipient = try recipient.exportSecret(context: x.exporter_context.bytes, outputByteCount: x.L)
            #expect(fromSender.copiedBytes == x.exported_value.bytes)
            #expect(fromRecipient == fromSender)
            exportsRun += 1
        }
        #expect(exportsRun == 3)
        print("RFC 9180 \(v.testDescription): \(encryptionsRun) encryptions and \(exportsRun) exports passed")
    }

    @Test func vectorFileHoldsBaseAndAuthForBothSuites() throws {
        let all = try RFC9180Vector.loadAll()
        let kinds = Set(all.map { "\($0.mode)/\($0.aead_id)" })
        #expect(kinds == ["0/3", "2/3", "0/65535", "2/65535"])
        #expect(all.reduce(0) { $0 + $1.encryptions.count } == 2 * 257)
    }

    @Test func openRejectsTamperingAndReordering() throws {
        let recipientKey = AgreementKey.Private()
        var sender = try HPKE.Sender(recipientKey: recipientKey.publicKey, ciphersuite: .x25519SHA256ChaChaPoly, info: [1])
        let first = try sender.seal([1, 2, 3], authenticating: [9])
        let second = try sender.seal([4, 5, 6], authenticating: [9])

        func recipient(info: [UInt8] = [1]) throws -> HPKE.Recipient {
            try HPKE.Recipient(
                privateKey: recipientKey,
                ciphersuite: .x25519SHA256ChaChaPoly,
                info: info,
                encapsulatedKey: sender.encapsulatedKey
            )
        }
        var outOfOrder = try recipient()
        #expect(throws: CryptoError(.authenticationFailure, "chacha20-poly1305")) {
            try outOfOrder.open(second, authenticating: [9])
        }
        var wrongInfo = try recipient(info: [2])
        #expect(throws: CryptoError(.authenticationFailure, "chacha20-poly1305")) {
            try wrongInfo.open(first, authenticating: [9])
        }
        var wrongAAD = try recipient()
        #expect(throws: CryptoError(.authenticationFailure, "chacha20-poly1305")) {
            try wrongAAD.open(first, authenticating: [8])
        }
        var inOrder = try recipient()
        #expect(try inOrder.open(first, authenticating: [9]) == [1, 2, 3])
        #expect(try inOrder.open(second, authenticating: [9]) == [4, 5, 6])
    }

    @Test func authModeRejectsAnotherSender() throws {
        let recipientKey = AgreementKey.Private()
        let realSender = AgreementKey.Private()
        var sender = try HPKE.Sender(
            recipientKey: recipientKey.publicKey,
            ciphersuite: .x25519SHA256ChaChaPoly,
            info: [],
            authenticatedBy: realSender
        )
        let ct = try sender.seal([42])
        var impostor = try HPKE.Recipient(
            privateKey: recipientKey,
            ciphersuite: .x25519SHA256ChaChaPoly,
            info: [],
            encapsulatedKey: sender.encapsulatedKey,
            authenticatedBy: AgreementKey.Private().publicKey
        )
        let error = #expect(throws: CryptoError.self) { try impostor.open(ct) }
        #expect(error?.code == .authenticationFailure)
    }

    @Test func exportOnlySuiteRefusesToSeal() throws {
        var sender = try HPKE.Sender(
            recipientKey: AgreementKey.Private().publicKey,
            ciphersuite: .x25519SHA256ExportOnly,
            info: []
        )
        let error = #expect(throws: CryptoError.self) { try sender.seal([1]) }
        #expect(error?.code == .unsupported)
        #expect(try sender.exportSecret(context: [], outputByteCount: 32).count == 32)
    }

    @Test func smallOrderEncIsRefused() throws {
        let error = #expect(throws: CryptoError.self) {
            try HPKE.Recipient(
                privateKey: AgreementKey.Private(),
                ciphersuite: .x25519SHA256ChaChaPoly,
                info: [],
                encapsulatedKey: [UInt8](repeating: 0, count: 32)
            )
        }
        #expect(error?.code == .weakPublicKey)
    }
}
