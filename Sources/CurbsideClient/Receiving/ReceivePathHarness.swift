import CurbsideWire
import Foundation
import GRDB

/// Drives a real profile's receive path (open, check, store, receipt decision) without a relay: the libFuzzer
/// harness `fuzz-receive` and its seed replay in `make test` use it. Not for integrators.
///
/// The profile belongs to `osei.derm`, with a signed prekey and one-time prekeys, and has pinned `amara.gp`. An
/// input's first byte says how the rest becomes a delivered envelope:
/// - 0: the rest is the envelope's bytes as delivered (decoding and opening failures);
/// - 1, 2, 3: the rest is decoded as a `Message`, and whatever content, ids, times and attachments it carries are
///   re-addressed to the profile and signed by amara.gp (1), by a key amara.gp did not pin (2) or by mallory.gp,
///   while the relay says amara.gp sent it (3), then sealed to a one-time prekey (odd second byte) or the signed one;
/// - 4: the rest is sealed as it is to the signed prekey, as if it were a signed message (malformed content, bad
///   signatures).
///
/// Every input is delivered twice, as a relay re-delivers: the second delivery must be settled the same way and
/// change nothing. Any other outcome, or an error that is not the profile's, is a finding.
@_spi(Fuzzing)
public final class ReceivePathHarness: Sendable {
    let client: Client
    let gp: SigningKey
    let stranger: SigningKey
    let mallory: SigningKey
    let signedPrekey: AgreementKey.Private
    let oneTimePrekeys: [UInt32: AgreementKey.Private]
    let directory: URL

    /// A new profile in a fresh directory under `parent`.
    public init(in parent: URL) async throws {
        directory = parent.appendingPathComponent("curbside-receive-\(UUID())")
        try makePrivateDirectory(directory)
        let database = try ProfileDatabase(path: Client.databasePath(directory), storageKey: SymmetricKey(byteCount: 32))
        let me = try SigningKey(seed: SecretBytes([UInt8](repeating: 1, count: 32)))
        gp = try SigningKey(seed: SecretBytes([UInt8](repeating: 2, count: 32)))
        stranger = try SigningKey(seed: SecretBytes([UInt8](repeating: 3, count: 32)))
        mallory = try SigningKey(seed: SecretBytes([UInt8](repeating: 4, count: 32)))
        signedPrekey = try AgreementKey.Private(rawRepresentation: SecretBytes([UInt8](repeating: 5, count: 32)))
        var oneTime: [UInt32: AgreementKey.Private] = [:]
        for id in UInt32(1)...16 {
            oneTime[id] = try AgreementKey.Private(rawRepresentation: SecretBytes([UInt8](repeating: UInt8(0x10 + id), count: 32)))
        }
        oneTimePrekeys = oneTime
        let handle = try Handle("osei.derm")
        let relay = RelayEndpoint(host: "127.0.0.1", port: 1, fingerprint: String(repeating: "0", count: 64))
        let gpParty = Party(identityKey: gp.verifyingKey, handle: try Handle("amara.gp"))
        let signedKey = signedPrekey
        try await database.writer.write { db in
            try ProfileDatabase.setSetting(db, "handle", handle.rawValue)
            try ProfileDatabase.setSetting(db, "relay", String(decoding: try JSONEncoder().encode(relay), as: UTF8.self))
            _ = try ContactStore.pinOnFirstUse(db, gpParty, now: .now())
            let sealed = try database.seal(signedKey.rawRepresentation.copiedBytes, column: "prekey.private_key", row: ProfileDatabase.prekeyRow(kind: 1, id: 1))
            try PrekeyStore.insert(db, .signed, id: 1, privateKey: sealed, createdAt: 0, published: true)
        }
        client = try Client(me: Party(identityKey: me.verifyingKey, handle: handle), relay: relay, home: directory, identity: me, database: database, logger: Client.silentLogger)
        try await restoreOneTimePrekeys()
    }

    /// Removes the profile.
    public func remove() {
        try? FileManager.default.removeItem(at: directory)
    }

    /// Puts back every one-time prekey, so that later inputs can be sealed to them again.
    func restoreOneTimePrekeys() async throws {
        let database = client.database
        let keys = oneTimePrekeys
        try await database.writer.write { db in
            for (id, key) in keys {
                let sealed = try database.seal(key.rawRepresentation.copiedBytes, column: "prekey.private_key", row: ProfileDatabase.prekeyRow(kind: 2, id: id))
                try PrekeyStore.insert(db, .oneTime, id: id, privateKey: sealed, createdAt: 0, published: true, replacing: true)
            }
        }
    }

    /// What one input did, for a harness to count.
    public enum Outcome: Sendable, Equatable {
        case notAnEnvelope
        case acknowledged
        case rejected
    }

    /// A finding: the receive path broke one of its rules for an input.
    public struct Finding: Error, CustomStringConvertible {
        public let description: String
    }

    /// Runs one input through the receive path twice (delivery and re-delivery).
    ///
    /// - Throws: `Finding` when a rule is broken; errors of the profile itself (disk) as they are.
    public func run(_ input: [UInt8]) async throws -> Outcome {
        guard let mode = input.first else { return .notAnEnvelope }
        let rest = Array(input.dropFirst())
        guard let envelope = try envelope(mode: mode, rest) else { return .notAnEnvelope }
        let sender = try Handle("amara.gp")
        let delivered = DeliveredEnvelope(
            sequence: 1, envelopeID: SHA256.hash(envelope), sender: sender, storedAt: .now(), envelope: envelope
        )
        var report = SyncReport()
        let first: Disposition
        do {
            first = try await client.receive(delivered, report: &report)
        } catch let error as ClientError where error.category != .profile {
            throw Finding(description: "receive threw for the envelope's own fault: \(error)")
        }
        let rows = try await counts()
        let second = try await client.receive(delivered, report: &report)
        guard second == first else { throw Finding(description: "a re-delivery was settled as \(second), the delivery as \(first)") }
        guard try await counts() == rows else { throw Finding(description: "a re-delivery changed the profile") }
        if case .reject = first {
            let recorded = try await client.database.writer.read { db in try ReceivedEnvelopeStore.hasFailure(db, Data(delivered.envelopeID)) }
            guard recorded else { throw Finding(description: "a rejection was not recorded as a failure") }
        }
        try await restoreOneTimePrekeys()
        return first == .acknowledge ? .acknowledged : .rejected
    }

    private func counts() async throws -> [Int] {
        try await client.database.writer.read { db in
            try ["message", "event", "outbox", "attachment", "failure", "seen_envelope", "contact"].map { try ProfileDatabase.rowCount(db, table: $0) }
        }
    }

    private func envelope(mode: UInt8, _ rest: [UInt8]) throws -> [UInt8]? {
        let me = client.me
        switch mode % 5 {
        case 0:
            return rest.isEmpty ? nil : rest
        case 4:
            guard !rest.isEmpty else { return nil }
            return try SealedEnvelope.seal(
                plaintext: rest, to: signedPrekey.publicKey, as: .init(kind: .signed, id: 1), ephemeralKeyMaterial: .random(count: 32)
            ).encoded
        default:
            guard rest.count > 1 else { return nil }
            let body = Array(rest.dropFirst())
            // A whole message, or a bare consult, reply or receipt given a fixed id in its own thread.
            let decoded: Message
            if let message = try? Message(decoding: body) {
                decoded = message
            } else if let content = (try? Consult(decoding: body)).map(Content.consult) ?? (try? Reply(decoding: body)).map(Content.reply)
                ?? (try? Receipt(decoding: body)).map(Content.receipt)
            {
                decoded = try Message(sender: me, recipient: me, id: try MessageID(rawValue: [UInt8](repeating: rest[0], count: 16)), content: content)
            } else {
                return nil
            }
            let signer: SigningKey
            let handle: Handle
            switch mode % 5 {
            case 1: (signer, handle) = (gp, try Handle("amara.gp"))
            case 2: (signer, handle) = (stranger, try Handle("amara.gp"))
            default: (signer, handle) = (mallory, try Handle("mallory.gp"))
            }
            let message = try Message(
                sender: Party(identityKey: signer.verifyingKey, handle: handle),
                recipient: me,
                id: decoded.id,
                threadID: decoded.threadID,
                createdAt: decoded.createdAt,
                content: decoded.content,
                attachments: decoded.attachments
            )
            let signed = try SignedMessage(signing: message, with: signer)
            let oneTimeID = UInt32(rest[0] % 16) + 1
            let (key, reference): (AgreementKey.Public, SealedEnvelope.PrekeyReference) =
                rest[0] & 1 == 1
                ? (oneTimePrekeys[oneTimeID]!.publicKey, .init(kind: .oneTime, id: oneTimeID))
                : (signedPrekey.publicKey, .init(kind: .signed, id: 1))
            return try SealedEnvelope.seal(plaintext: signed.encoded, to: key, as: reference, ephemeralKeyMaterial: .random(count: 32)).encoded
        }
    }
}
