import CurbsideWire
import Foundation
import GRDB

extension Client {
    /// Rotates the signed prekey when it is due (the previous one is retired only once the relay has the new one),
    /// and tops the relay's one-time prekeys up to the target.
    func maintainPrekeys(_ connection: RelayConnection, now: Timestamp = .now()) async throws {
        let database = self.database
        let identity = self.identity
        let nowMS = now.signedMilliseconds
        let latest = try await database.writer.read { db in try PrekeyStore.newestSignedCreatedAt(db) }
        if latest.map({ now.millisecondsSince1970 >= UInt64($0) + Self.signedPrekeyRotation * 1000 }) ?? true {
            let key = AgreementKey.Private()
            try await database.writer.write { db in
                let id = try ProfileDatabase.nextNumber(db, "next_signed_prekey_id", startingAt: 1)
                let sealedKey = try database.seal(
                    key.rawRepresentation.copiedBytes,
                    column: "prekey.private_key",
                    row: ProfileDatabase.prekeyRow(kind: 1, id: id)
                )
                try PrekeyStore.insert(
                    db,
                    .signed,
                    id: id,
                    privateKey: sealedKey,
                    createdAt: nowMS,
                    expiresAt: nowMS + Int64(Self.signedPrekeyLifetime * 1000),
                    published: false
                )
            }
        }
        // An unpublished signed prekey (new, or one whose upload failed before) goes up until the relay has it.
        var signed: SignedPrekey?
        if let record = try await database.writer.read({ db in try PrekeyStore.unpublishedSigned(db) }) {
            let id = record.id
            let key = try AgreementKey.Private(
                rawRepresentation: SecretBytes(
                    try database.unseal(record.privateKey, column: "prekey.private_key", row: ProfileDatabase.prekeyRow(kind: 1, id: id))
                )
            )
            signed = SignedPrekey(
                id: id,
                publicKey: key.publicKey,
                expiresAt: Timestamp(millisecondsSince1970: UInt64(record.expiresAt ?? 0)),
                signedBy: identity
            )
        }
        guard case .prekeysPublished(let heldAtFirst) = try await request(connection, .publishPrekeys(try PrekeyUpload(signedPrekey: signed, oneTimePrekeys: []))) else {
            throw ClientError(.protocolViolation, "the relay did not answer prekeys_published")
        }
        if let signed {
            // The relay hands out the new key from now on; the older ones are kept for envelopes already sealed to them.
            try await database.writer.write { db in
                try PrekeyStore.markPublished(db, .signed, ids: [signed.id])
                try PrekeyStore.retireSigned(db, except: signed.id, at: nowMS)
            }
        }
        var held = heldAtFirst
        // One-time keys whose upload failed before (a dropped connection) go up again first: the relay ignores ids
        // it holds already, and until it has them they must not count as on the relay or as handed out. If it
        // refuses them, no sender can have them: they are deleted.
        let unpublished = try await database.writer.read { db in try PrekeyStore.unpublishedOneTime(db) }
        for start in stride(from: 0, to: unpublished.count, by: 100) {
            let records = try unpublished[start..<min(start + 100, unpublished.count)].map { record -> OneTimePrekey in
                let id = record.id
                let key = try AgreementKey.Private(
                    rawRepresentation: SecretBytes(
                        try database.unseal(record.privateKey, column: "prekey.private_key", row: ProfileDatabase.prekeyRow(kind: 2, id: id))
                    )
                )
                return OneTimePrekey(id: id, publicKey: key.publicKey, signedBy: identity)
            }
            do {
                held = try await publishOneTimePrekeys(records, connection)
            } catch let error as ClientError where error.category != .network {
                let ids = records.map(\.id)
                try await database.writer.write { db in try PrekeyStore.deleteOneTime(db, ids: ids, unpublishedOnly: true) }
                logger.warning("\(ids.count) one-time prekeys the relay refused were deleted: \(error.message)")
            }
        }
        try await markHandedOut(held: held, now: now)
        var missing = max(0, Self.oneTimePrekeyTarget - Int(held))
        while missing > 0 {
            let batch = min(missing, 100)
            let keys = (0..<batch).map { _ in AgreementKey.Private() }
            let records = try await database.writer.write { db in
                try keys.map { key in
                    let id = try ProfileDatabase.nextNumber(db, "next_one_time_prekey_id", startingAt: 1)
                    let sealedKey = try database.seal(
                        key.rawRepresentation.copiedBytes,
                        column: "prekey.private_key",
                        row: ProfileDatabase.prekeyRow(kind: 2, id: id)
                    )
                    // Published once the relay says it holds them (a dropped upload is sent again next time).
                    try PrekeyStore.insert(db, .oneTime, id: id, privateKey: sealedKey, createdAt: nowMS, published: false)
                    return OneTimePrekey(id: id, publicKey: key.publicKey, signedBy: identity)
                }
            }
            held = try await publishOneTimePrekeys(records, connection)
            missing -= batch
        }
    }

    /// Uploads one-time prekeys and marks them published once the relay answers; returns how many it holds.
    private func publishOneTimePrekeys(_ records: [OneTimePrekey], _ connection: RelayConnection) async throws -> UInt32 {
        guard case .prekeysPublished(let held) = try await request(connection, .publishPrekeys(try PrekeyUpload(signedPrekey: nil, oneTimePrekeys: records))) else {
            throw ClientError(.protocolViolation, "the relay did not answer prekeys_published")
        }
        let ids = records.map(\.id)
        try await database.writer.write { db in try PrekeyStore.markPublished(db, .oneTime, ids: ids) }
        return held
    }

    /// Records which one-time prekeys have left the relay: it hands them out lowest id first, so all but the `held`
    /// newest unused ones it was given (keys.md §One-time prekeys). Keys whose upload is not confirmed do not count.
    func markHandedOut(held: UInt32, now: Timestamp) async throws {
        try await database.writer.write { db in try PrekeyStore.markHandedOut(db, keepingNewest: held, at: now.signedMilliseconds) }
    }

    /// How long a one-time private key handed out by the relay and never used is kept, and how many such keys at
    /// most: someone draining the relay's one-time prekeys cannot grow the profile's private keys without bound.
    static let handedOutPrekeyGrace: UInt64 = 7 * 86_400
    static let maximumHandedOutPrekeys = 200

    /// Deletes one-time private keys handed out by the relay longer ago than the grace, and all but the newest
    /// ``maximumHandedOutPrekeys`` of them. Runs after fetching, so what waited on the relay is opened first.
    func deleteHandedOutPrekeys(now: Timestamp = .now()) async throws {
        let cutoff = now.signedMilliseconds - Int64(Self.handedOutPrekeyGrace * 1000)
        try await database.writer.write { db in
            try PrekeyStore.deleteHandedOut(db, before: cutoff, keepingAtMost: Self.maximumHandedOutPrekeys)
        }
    }

    /// Deletes retired signed prekeys once no envelope sealed to them can still arrive: the grace period after
    /// retirement plus the relay's envelope lifetime. Runs after fetching, so what waited is opened first.
    func deleteRetiredPrekeys(now: Timestamp = .now()) async throws {
        let cutoff = now.signedMilliseconds - Int64((Self.signedPrekeyGrace + Self.relayEnvelopeLifetime) * 1000)
        try await database.writer.write { db in try PrekeyStore.deleteRetired(db, before: cutoff) }
    }
}
