import CurbsideTLS
import CurbsideWire
import Foundation
import GRDB

/// What a sync did.
public struct SyncReport: Sendable, Hashable, Codable {
    /// Messages that left the outbox (acknowledged `stored` by the relay).
    public var sent = 0
    /// Messages still in the outbox, and why the last one is waiting.
    public var queued = 0
    public var queueReason: String?
    /// New consults and replies, and receipts and notices applied.
    public var received = 0
    public var receipts = 0
    public var notices = 0
    /// Envelopes that could not be opened (recorded, acknowledged, reported to the sender where possible).
    public var failed = 0
    /// Whether the relay was reached at all.
    public var reachedRelay = false

    public init() {}
}

extension Client {
    // MARK: - Connections

    /// Runs `body` on a logged-in connection (the current one, or a new one closed afterwards).
    func withConnection<T: Sendable>(loggingIn: Bool = true, _ body: (RelayConnection) async throws -> T) async throws -> T {
        if let connection { return try await body(connection) }
        let connection: RelayConnection
        do {
            connection = try await RelayConnection.open(host: relay.host, port: relay.port, tls: tls)
        } catch let error as TLSError where error.code == .pinMismatch {
            throw ClientError(
                .network,
                "the relay at \(relay) did not present the pinned certificate key",
                hint: "the relay's fingerprint is printed by `curbside relay init`; if the operator replaced the relay's key, "
                    + "confirm the new fingerprint with them before trusting it"
            )
        } catch {
            throw ClientError.unreachable(relay, "\(error)")
        }
        if loggingIn {
            do {
                try await connection.login(as: me.handle, identity: identity)
            } catch let error as RelayClientError {
                await connection.close()
                throw clientError(error)
            }
        }
        self.connection = connection
        defer { self.connection = nil }
        do {
            let value = try await body(connection)
            await connection.close()
            return value
        } catch {
            await connection.close()
            throw error
        }
    }

    nonisolated func clientError(_ error: RelayClientError) -> ClientError {
        switch error {
        case .refused(let relayError): ClientError.refused(relayError)
        case .connectionLost(let why): ClientError.unreachable(relay, why)
        case .timedOut(let seconds): ClientError.unreachable(relay, "no answer within \(seconds) s")
        case .protocolViolation(let what): ClientError(.protocol, "the relay broke the protocol: \(what)")
        }
    }

    /// One request; relay errors become `ClientError`s.
    func request(_ connection: RelayConnection, _ message: RelayMessage) async throws -> RelayMessage {
        do {
            return try await connection.request(message)
        } catch let error as RelayClientError {
            throw clientError(error)
        }
    }

    // MARK: - Prekeys

    /// Rotates the signed prekey when it is due, deletes retired ones past their grace, and tops the relay's
    /// one-time prekeys up to the target.
    func maintainPrekeys(_ connection: RelayConnection, now: Timestamp = .now()) async throws {
        let database = self.database
        let identity = self.identity
        let current = try await database.writer.read { db in
            try Row.fetchOne(db, sql: "SELECT id, created_at FROM prekey WHERE kind = 1 AND retired_at IS NULL ORDER BY id DESC LIMIT 1")
        }
        var signed: SignedPrekey?
        let due = current.map { now.millisecondsSince1970 >= UInt64($0["created_at"] as Int64) + Self.signedPrekeyRotation * 1000 } ?? true
        if due {
            let key = AgreementKey.Private()
            let sealedKey = try database.seal(key.rawRepresentation.copiedBytes, column: "prekey.private_key")
            let expiresAt = now.adding(seconds: Self.signedPrekeyLifetime)
            signed = try await database.writer.write { db in
                let id = try ProfileDatabase.nextNumber(db, "next_signed_prekey_id", startingAt: 1)
                try db.execute(
                    sql: "UPDATE prekey SET retired_at = ? WHERE kind = 1 AND retired_at IS NULL",
                    arguments: [Int64(now.millisecondsSince1970)]
                )
                try db.execute(
                    sql: "INSERT INTO prekey (kind, id, private_key, created_at, expires_at) VALUES (1, ?, ?, ?, ?)",
                    arguments: [Int64(id), sealedKey, Int64(now.millisecondsSince1970), Int64(expiresAt.millisecondsSince1970)]
                )
                return SignedPrekey(id: id, publicKey: key.publicKey, expiresAt: expiresAt, signedBy: identity)
            }
        }
        // Retired signed prekeys past their grace are deleted: envelopes sealed to them can no longer be opened.
        let graceStart = Int64(now.millisecondsSince1970) - Int64(Self.signedPrekeyGrace * 1000)
        try await database.writer.write { db in
            try db.execute(sql: "DELETE FROM prekey WHERE kind = 1 AND retired_at IS NOT NULL AND retired_at < ?", arguments: [graceStart])
        }
        // Ask how many one-time prekeys the relay holds (publishing the new signed prekey, if any, at the same time).
        guard case .prekeysPublished(let held) = try await request(connection, .publishPrekeys(try PrekeyUpload(signedPrekey: signed, oneTimePrekeys: []))) else {
            throw ClientError(.protocol, "the relay did not answer prekeys_published")
        }
        var missing = max(0, Self.oneTimePrekeyTarget - Int(held))
        while missing > 0 {
            let batch = min(missing, 100)
            let keys = (0..<batch).map { _ in AgreementKey.Private() }
            let sealed = try keys.map { try database.seal($0.rawRepresentation.copiedBytes, column: "prekey.private_key") }
            let records = try await database.writer.write { db in
                try zip(keys, sealed).map { key, sealedKey in
                    let id = try ProfileDatabase.nextNumber(db, "next_one_time_prekey_id", startingAt: 1)
                    try db.execute(
                        sql: "INSERT INTO prekey (kind, id, private_key, created_at) VALUES (2, ?, ?, ?)",
                        arguments: [Int64(id), sealedKey, Int64(now.millisecondsSince1970)]
                    )
                    return OneTimePrekey(id: id, publicKey: key.publicKey, signedBy: identity)
                }
            }
            _ = try await request(connection, .publishPrekeys(try PrekeyUpload(signedPrekey: nil, oneTimePrekeys: records)))
            missing -= batch
        }
    }

    // MARK: - Contacts and trust

    /// Fetches `handle`'s bundle and checks it against the pinned identity: pins it on first use, and refuses (with
    /// the new key recorded) when it differs.
    ///
    /// With `toChangedKey`, a changed key is recorded but accepted: only for the `untrusted_sender` receipt that
    /// tells the holder of the new key why its message was held back.
    func trustedBundle(_ connection: RelayConnection, for handle: Handle, toChangedKey: Bool = false, now: Timestamp = .now()) async throws -> PrekeyBundle {
        let reply: RelayMessage
        do {
            reply = try await request(connection, .fetchBundle(handle))
        } catch let error as ClientError where error.message.contains("unknown_handle") {
            throw ClientError(.usage, "\(handle) is not registered on the relay (or has not published prekeys)", hint: "check the handle")
        }
        guard case .bundle(let bundle) = reply else { throw ClientError(.protocol, "the relay did not answer with a bundle") }
        guard bundle.owner.handle == handle else {
            throw ClientError(.protocol, "the relay answered with \(bundle.owner.handle)'s bundle for \(handle)")
        }
        let pinned: Party
        do {
            pinned = try await pin(bundle.owner, now: now)
        } catch let error as ClientError where error.category == .trust && toChangedKey {
            pinned = bundle.owner
        }
        do {
            try bundle.verify(now: now, expecting: pinned)
        } catch {
            throw ClientError(.protocol, "\(handle)'s prekey bundle does not verify: \(error)")
        }
        return bundle
    }

    /// Pins `party` if its handle is new; returns the pinned party, or throws `keyChanged` (recording the new key)
    /// when the handle is pinned to another key.
    @discardableResult
    func pin(_ party: Party, now: Timestamp = .now()) async throws -> Party {
        let key = Data(party.identityKey.rawRepresentation)
        let changed = try await database.writer.write { db -> Bool in
            guard let row = try Row.fetchOne(db, sql: "SELECT identity_key FROM contact WHERE handle = ?", arguments: [party.handle.rawValue]) else {
                try db.execute(
                    sql: "INSERT INTO contact (handle, identity_key, pinned_at) VALUES (?, ?, ?)",
                    arguments: [party.handle.rawValue, key, Int64(now.millisecondsSince1970)]
                )
                return false
            }
            guard row["identity_key"] as Data == key else {
                try db.execute(sql: "UPDATE contact SET changed_key = ? WHERE handle = ?", arguments: [key, party.handle.rawValue])
                return true
            }
            return false
        }
        if changed { throw ClientError.keyChanged(party.handle) }
        return party
    }

    // MARK: - Sending

    /// Records an outgoing message and queues it; the next sync seals and sends it.
    func queue(_ content: Content, to recipient: Handle, id: MessageID = .random(), thread: ThreadID? = nil, now: Timestamp = .now()) async throws -> MessageID {
        let body = try database.seal(content.encoded, column: "message.body")
        try await database.writer.write { db in
            try db.execute(
                sql: """
                    INSERT INTO message (id, thread_id, direction, peer, kind, created_at, body)
                    VALUES (?, ?, 'out', ?, ?, ?, ?)
                    """,
                arguments: [
                    Data(id.rawValue), Data((thread ?? id).rawValue), recipient.rawValue, Int64(content.kind.rawValue),
                    Int64(now.millisecondsSince1970), body,
                ]
            )
            try db.execute(
                sql: "INSERT INTO outbox (message_id, recipient, queued_at) VALUES (?, ?, ?)",
                arguments: [Data(id.rawValue), recipient.rawValue, Int64(now.millisecondsSince1970)]
            )
            if case .receipt = content {} else {
                try Self.addEvent(db, id, "created", at: now)
            }
        }
        return id
    }

    /// Seals (once) and sends every queued message, oldest first. Stops at the first network failure; a message
    /// refused for good (unknown recipient) leaves the outbox with a `failed` event.
    func flushOutbox(_ connection: RelayConnection, report: inout SyncReport) async throws {
        let entries = try await database.writer.read { db in
            try Row.fetchAll(db, sql: "SELECT o.*, m.thread_id, m.created_at, m.body FROM outbox o JOIN message m ON m.id = o.message_id ORDER BY o.queued_at, o.rowid")
        }
        for entry in entries {
            let id = try MessageID(rawValue: Array(entry["message_id"] as Data))
            let recipient = try Handle(entry["recipient"] as String)
            do {
                var envelope = (entry["envelope"] as Data?).map(Array.init)
                if envelope == nil {
                    // Each envelope needs its own bundle fetch: one-time prekeys are used once.
                    let content = try Content(decoding: try database.unseal(entry["body"] as Data, column: "message.body"))
                    var toChangedKey = false
                    if case .receipt(let receipt) = content, receipt.failure?.reason == .untrustedSender { toChangedKey = true }
                    let bundle = try await trustedBundle(connection, for: recipient, toChangedKey: toChangedKey)
                    let message = try Message(
                        sender: me,
                        recipient: bundle.owner,
                        id: id,
                        threadID: try MessageID(rawValue: Array(entry["thread_id"] as Data)),
                        createdAt: Timestamp(millisecondsSince1970: UInt64(entry["created_at"] as Int64)),
                        content: content
                    )
                    let sealed = try SealedEnvelope.seal(message, to: bundle, signedBy: identity).encoded
                    try await database.writer.write { db in
                        try db.execute(sql: "UPDATE outbox SET envelope = ? WHERE message_id = ?", arguments: [Data(sealed), Data(id.rawValue)])
                    }
                    envelope = sealed
                }
                guard let envelope else { continue }
                guard case .stored(let stored) = try await request(connection, .send(try SendRequest(recipient: recipient, envelope: envelope))) else {
                    throw ClientError(.protocol, "the relay did not answer stored")
                }
                try await database.writer.write { db in
                    try db.execute(sql: "DELETE FROM outbox WHERE message_id = ?", arguments: [Data(id.rawValue)])
                    try db.execute(sql: "UPDATE message SET envelope_id = ? WHERE id = ?", arguments: [Data(stored.envelopeID), Data(id.rawValue)])
                    try Self.addEvent(db, id, "stored", at: stored.storedAt)
                }
                report.sent += 1
            } catch let error as ClientError {
                let permanent = error.category == .usage
                try await database.writer.write { db in
                    if permanent {
                        try db.execute(sql: "DELETE FROM outbox WHERE message_id = ?", arguments: [Data(id.rawValue)])
                        try Self.addEvent(db, id, "failed", at: .now(), detail: error.message)
                    } else {
                        try db.execute(
                            sql: "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE message_id = ?",
                            arguments: [error.message, Data(id.rawValue)]
                        )
                    }
                }
                if error.category == .network { throw error }
                if !permanent { report.queueReason = error.message }
                logger.info("outbox: \(id) to \(recipient) waits: \(error.message)")
            }
        }
        report.queued = try await database.writer.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM outbox") ?? 0 }
    }

    // MARK: - Sync

    /// Sends what waits in the outbox, fetches and processes what the relay holds (acknowledging each envelope once
    /// it is saved), applies notices, and keeps prekeys topped up. When the relay cannot be reached, nothing is lost:
    /// the report says `reachedRelay == false` and the outbox keeps its messages.
    public func sync() async throws -> SyncReport {
        var report = SyncReport()
        do {
            try await withConnection { connection in
                report.reachedRelay = true
                try await maintainPrekeys(connection)
                try await flushOutbox(connection, report: &report)
                try await fetchAll(connection, report: &report)
                try await applyNotices(connection, report: &report)
                // Receipts queued while processing go out now.
                try await flushOutbox(connection, report: &report)
            }
        } catch let error as ClientError where error.category == .network && !report.reachedRelay {
            report.queued = try await database.writer.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM outbox") ?? 0 }
            report.queueReason = error.message
            logger.info("sync: \(error.message)")
        }
        return report
    }

    func fetchAll(_ connection: RelayConnection, report: inout SyncReport) async throws {
        var cursor = UInt64(try await database.setting("fetch_cursor") ?? "0") ?? 0
        while true {
            guard case .envelopes(let envelopes) = try await request(connection, .fetch(after: cursor, limit: 100)) else {
                throw ClientError(.protocol, "the relay did not answer with envelopes")
            }
            if envelopes.isEmpty { return }
            var saved: [[UInt8]] = []
            for envelope in envelopes {
                try await receive(envelope, report: &report)
                saved.append(envelope.envelopeID)
            }
            // Saved durably above; only now may the relay delete them.
            _ = try await request(connection, .acknowledge(saved))
            cursor = envelopes.last!.sequence
            try await database.setSetting("fetch_cursor", String(cursor))
        }
    }

    func applyNotices(_ connection: RelayConnection, report: inout SyncReport) async throws {
        guard case .notices(let notices) = try await request(connection, .fetchNotices(after: 0)) else {
            throw ClientError(.protocol, "the relay did not answer with notices")
        }
        guard let last = notices.last else { return }
        try await database.writer.write { db in
            for notice in notices {
                guard let id = try Data.fetchOne(db, sql: "SELECT id FROM message WHERE envelope_id = ?", arguments: [Data(notice.envelopeID)]) else { continue }
                let kind = notice.kind == .deliveredToDevice ? "delivered_to_device" : "expired"
                try Self.addEvent(db, try MessageID(rawValue: Array(id)), kind, at: notice.at)
            }
        }
        report.notices += notices.count
        _ = try await request(connection, .acknowledgeNotices(through: last.sequence))
    }

    // MARK: - Receiving

    /// Opens, checks and saves one envelope, and queues the receipt it calls for. Never throws for the envelope's
    /// own faults (those are recorded and reported); throws only when the profile cannot be written.
    func receive(_ delivered: DeliveredEnvelope, report: inout SyncReport, now: Timestamp = .now()) async throws {
        let database = self.database
        let envelopeID = Data(delivered.envelopeID)
        func recordFailure(_ reason: String) async throws {
            try await database.writer.write { db in
                try db.execute(
                    sql: "INSERT INTO failure (envelope_id, relay_sender, at, reason) VALUES (?, ?, ?, ?)",
                    arguments: [envelopeID, delivered.sender.rawValue, Int64(now.millisecondsSince1970), reason]
                )
            }
            report.failed += 1
            logger.warning("envelope from \(delivered.sender) could not be opened: \(reason)")
        }
        let sealed: SealedEnvelope
        do {
            sealed = try SealedEnvelope(decoding: delivered.envelope)
        } catch {
            return try await recordFailure("\(error.code.identifier)")
        }
        let reference = sealed.header.prekey
        let privateKey = try await database.writer.read { db in
            try Data.fetchOne(db, sql: "SELECT private_key FROM prekey WHERE kind = ? AND id = ?", arguments: [Int64(reference.kind.rawValue), Int64(reference.id)])
        }
        var ring = PrekeyRing()
        if let privateKey {
            let key = try AgreementKey.Private(rawRepresentation: SecretBytes(try database.unseal(privateKey, column: "prekey.private_key")))
            if reference.kind == .signed { ring.signedPrekeys[reference.id] = key } else { ring.oneTimePrekeys[reference.id] = key }
        }
        let opened: OpenedEnvelope
        do {
            opened = try sealed.open(as: me, using: ring)
        } catch {
            return try await recordFailure("\(error.code.identifier)")
        }
        let message = opened.message
        let duplicate = try await database.writer.read { db in
            try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM message WHERE id = ?)", arguments: [Data(message.id.rawValue)]) ?? false
        }
        if duplicate {
            logger.debug("duplicate \(message.id) dropped")
            return
        }
        let keyChanged: Bool
        do {
            try await pin(message.sender, now: now)
            keyChanged = false
        } catch let error as ClientError where error.category == .trust {
            keyChanged = true
        }
        let body = try database.seal(message.content.encoded, column: "message.body")
        try await database.writer.write { db in
            try db.execute(
                sql: """
                    INSERT INTO message (id, thread_id, direction, peer, kind, created_at, received_at, body, signature, envelope_id, sender_key_changed)
                    VALUES (?, ?, 'in', ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    Data(message.id.rawValue), Data(message.threadID.rawValue), message.sender.handle.rawValue,
                    Int64(message.content.kind.rawValue), Int64(message.createdAt.millisecondsSince1970),
                    Int64(now.millisecondsSince1970), body, Data(opened.signature), envelopeID, keyChanged,
                ]
            )
            // Forward secrecy: a one-time prekey opens one envelope, then it is gone.
            if opened.prekey.kind == .oneTime {
                try db.execute(sql: "DELETE FROM prekey WHERE kind = 2 AND id = ?", arguments: [Int64(opened.prekey.id)])
            }
            guard !keyChanged else { return }
            switch message.content {
            case .receipt(let receipt):
                // Only the peer a message went to may report on it.
                let ours = try Bool.fetchOne(
                    db,
                    sql: "SELECT EXISTS (SELECT 1 FROM message WHERE id = ? AND direction = 'out' AND peer = ?)",
                    arguments: [Data(receipt.messageID.rawValue), message.sender.handle.rawValue]
                ) ?? false
                guard ours else { return }
                let kind = switch receipt.kind {
                    case .delivered: "delivered"
                    case .read: "read"
                    case .failed: "failed"
                    }
                let detail = receipt.failure.map { "\($0.reason) \($0.detail)".trimmingCharacters(in: .whitespaces) }
                try Self.addEvent(db, receipt.messageID, kind, at: message.createdAt, detail: detail)
            case .reply(let reply):
                try Self.addEvent(db, message.id, "received", at: now)
                let answersOurs = try Bool.fetchOne(
                    db,
                    sql: "SELECT EXISTS (SELECT 1 FROM message WHERE id = ? AND direction = 'out')",
                    arguments: [Data(reply.inReplyTo.rawValue)]
                ) ?? false
                if answersOurs { try Self.addEvent(db, reply.inReplyTo, "answered", at: message.createdAt) }
            case .consult:
                try Self.addEvent(db, message.id, "received", at: now)
            }
        }
        switch message.content {
        case .receipt:
            report.receipts += 1
        case .consult, .reply:
            report.received += 1
            let receipt: Receipt =
                keyChanged
                ? .failed(message.id, try Receipt.Failure(reason: .untrustedSender, detail: "the recipient has not verified your new identity key"))
                : .delivered(message.id)
            _ = try await queue(.receipt(receipt), to: message.sender.handle, thread: message.threadID, now: now)
        }
    }

    static func addEvent(_ db: Database, _ id: MessageID, _ kind: String, at: Timestamp, detail: String? = nil) throws {
        try db.execute(
            sql: "INSERT INTO event (message_id, kind, at, detail) VALUES (?, ?, ?, ?)",
            arguments: [Data(id.rawValue), kind, Int64(at.millisecondsSince1970), detail]
        )
    }
}

/// Something `watch` saw happen.
public struct WatchEvent: Sendable, Hashable, Codable {
    /// connected, disconnected, received, receipt, notice, sent.
    public let event: String
    public let detail: String
    /// Milliseconds since 1970.
    public let at: UInt64
}

extension Client {
    /// Stays connected: syncs, then processes pushed envelopes and notices as they arrive, calling `onEvent`;
    /// reconnects with exponential back-off (1 s doubling to 60 s) when the connection is lost. Returns when the
    /// task is cancelled.
    public func watch(onEvent: @Sendable (WatchEvent) -> Void) async {
        var backoff: Duration = .seconds(1)
        func emit(_ event: String, _ detail: String) {
            onEvent(WatchEvent(event: event, detail: detail, at: Timestamp.now().millisecondsSince1970))
        }
        while !Task.isCancelled {
            do {
                try await withConnection { connection in
                    emit("connected", "\(relay)")
                    backoff = .seconds(1)
                    var report = SyncReport()
                    try await maintainPrekeys(connection)
                    try await flushOutbox(connection, report: &report)
                    try await fetchAll(connection, report: &report)
                    try await applyNotices(connection, report: &report)
                    try await flushOutbox(connection, report: &report)
                    self.announce(report, emit)
                    for await push in connection.pushes {
                        if Task.isCancelled { break }
                        var report = SyncReport()
                        switch push {
                        case .pushEnvelope(let delivered):
                            try await receive(delivered, report: &report)
                            _ = try await request(connection, .acknowledge([delivered.envelopeID]))
                        case .pushNotice:
                            try await applyNotices(connection, report: &report)
                        case .prekeysLow:
                            try await maintainPrekeys(connection)
                        default:
                            break
                        }
                        try await flushOutbox(connection, report: &report)
                        self.announce(report, emit)
                    }
                }
                emit("disconnected", "the relay closed the connection")
            } catch {
                emit("disconnected", "\(error)")
            }
            guard !Task.isCancelled else { return }
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(60))
        }
    }

    private nonisolated func announce(_ report: SyncReport, _ emit: (String, String) -> Void) {
        if report.received > 0 { emit("received", "\(report.received) new consult(s) or reply(ies); `curbside inbox` lists them") }
        if report.receipts > 0 { emit("receipt", "\(report.receipts) receipt(s); `curbside status` shows them") }
        if report.notices > 0 { emit("notice", "\(report.notices) relay notice(s)") }
        if report.sent > 0 { emit("sent", "\(report.sent) message(s) left the outbox") }
        if report.failed > 0 { emit("failed", "\(report.failed) envelope(s) could not be opened") }
    }
}
