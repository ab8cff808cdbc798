import CurbsideWire
import Foundation
import GRDB

extension Client {
    // MARK: - Contacts

    /// Every pinned contact, by handle.
    public func contacts() async throws -> [Contact] {
        try await database.writer.read { db in try ContactStore.all(db) }.map(contact(from:))
    }

    /// The pinned contact `handle`; fetched from the relay and pinned on first use when it is not known yet.
    public func contact(_ handle: Handle) async throws -> Contact {
        if let known = try await pinnedContact(handle) { return known }
        _ = try await withConnection { connection in try await trustedBundle(connection, for: handle) }
        guard let pinned = try await pinnedContact(handle) else { throw ClientError(.protocolViolation, "\(handle) could not be pinned") }
        return pinned
    }

    /// Marks `handle` verified if `safetyNumber` (digits; spaces ignored) is the safety number with its key — the new
    /// key when one is pending, which then replaces the pinned one.
    ///
    /// - Throws: `ClientError.trust` when the numbers differ (nothing changes), `.usage` for an unknown contact.
    public func verify(_ handle: Handle, safetyNumber: String) async throws -> Contact {
        guard let pinned = try await database.writer.read({ db in try ContactStore.contact(db, handle) }) else {
            throw ClientError(.unknownContact, "\(handle) is not a contact yet", hint: "`curbside contacts show \(handle)` fetches and pins it")
        }
        let key = pinned.changedKey ?? pinned.identityKey
        let party = Party(identityKey: try VerifyingKey(rawRepresentation: Array(key)), handle: handle)
        let expected = self.safetyNumber(with: party).description.filter { $0.isNumber }
        let given = safetyNumber.filter(\.isNumber)
        guard constantTimeEquals(Array(expected.utf8), Array(given.utf8)) else {
            throw ClientError(
                .safetyNumberMismatch,
                "that is not the safety number of \(handle)'s key; nothing was changed",
                hint: "compare all 60 digits with \(handle) in person or by phone; a mismatch can mean someone is intercepting"
            )
        }
        try await database.writer.write { db in
            try ContactStore.markVerified(db, handle, key: key)
            // Messages held back because they came with the key now verified can be shown.
            try MessageStore.trustSender(db, handle, key: key)
        }
        return try await pinnedContact(handle)!
    }

    private func pinnedContact(_ handle: Handle) async throws -> Contact? {
        try await database.writer.read { db in try ContactStore.contact(db, handle) }.map(contact(from:))
    }

    private nonisolated func contact(from record: ContactRecord) throws -> Contact {
        let handle = try Handle(record.handle)
        let pinned = Array(record.identityKey)
        let changed = record.changedKey.map(Array.init)
        let party = Party(identityKey: try VerifyingKey(rawRepresentation: changed ?? pinned), handle: handle)
        return Contact(
            handle: handle.rawValue,
            identityKey: pinned.hexString,
            verified: record.verified,
            changedKey: changed?.hexString,
            safetyNumber: safetyNumber(with: party).description,
            pinnedAt: UInt64(record.pinnedAt)
        )
    }

    // MARK: - Trust on first use

    /// Fetches `handle`'s bundle and checks it against the pinned identity: pins it on first use, and refuses (with
    /// the new key recorded) when it differs.
    ///
    /// With `toChangedKey`, a changed key is recorded but accepted: only for the `untrusted_sender` receipt that
    /// tells the holder of the new key why its message was held back.
    func trustedBundle(_ connection: RelayConnection, for handle: Handle, toChangedKey: Bool = false, now: Timestamp = .now()) async throws -> PrekeyBundle {
        let reply: RelayMessage
        do {
            reply = try await connection.request(.fetchBundle(handle))
        } catch RelayClientError.refused(let error) where error.code == .unknownHandle {
            throw ClientError(
                .unknownRecipient,
                "\(handle) is not registered on the relay (or has not published prekeys yet)",
                hint: "check the handle",
                relayError: error
            )
        } catch let error as RelayClientError {
            throw clientError(error)
        }
        guard case .bundle(let bundle) = reply else { throw ClientError(.protocolViolation, "the relay did not answer with a bundle") }
        guard bundle.owner.handle == handle else {
            throw ClientError(.protocolViolation, "the relay answered with \(bundle.owner.handle)'s bundle for \(handle)")
        }
        let pinned: Party
        do {
            pinned = try await pin(bundle.owner, now: now)
        } catch let error as ClientError where error.category == .trust && toChangedKey {
            pinned = bundle.owner
        }
        do {
            try bundle.verify(now: now, expecting: pinned)
        } catch where error.code == .prekeyExpired {
            throw ClientError(
                .recipientKeysExpired,
                "\(handle)'s published keys have expired (they have not been online for a while)",
                hint: "the message waits in the outbox and goes out once \(handle) is back online"
            )
        } catch {
            throw ClientError(.invalidBundle, "\(handle)'s prekey bundle does not verify (\(error)); nothing was sent to it")
        }
        return bundle
    }

    /// Pins `party` if its handle is new; returns the pinned party, or throws `keyChanged` (recording the new key)
    /// when the handle is pinned to another key.
    @discardableResult
    func pin(_ party: Party, now: Timestamp = .now()) async throws -> Party {
        let trusted = try await database.writer.write { db in try ContactStore.pinOnFirstUse(db, party, now: now) }
        if !trusted { throw ClientError.keyChanged(party.handle) }
        return party
    }
}
