import CurbsideWire
import Logging
import NIOCore
import PostgresNIO

extension PostgresRelayStore {
    public func accounts() async throws -> [AccountSummary] {
        let logger = self.logger
        return try await reading { connection in
            var accounts: [AccountSummary] = []
            let rows = try await connection.query(ifOpen:
                """
                SELECT a.handle, a.identity_key, a.registered_at, a.last_seen_at,
                    COALESCE(q.envelopes, 0)::bigint, COALESCE(q.bytes, 0)::bigint
                FROM account a LEFT JOIN queue_usage q ON q.recipient = a.handle
                ORDER BY a.handle COLLATE "C"
                """,
                logger: logger
            )
            for try await (handle, key, registeredAt, lastSeenAt, envelopes, bytes) in rows.decode(
                (String, ByteBuffer, Int64, Int64?, Int64, Int64).self
            ) {
                accounts.append(
                    AccountSummary(
                        handle: try Handle(handle),
                        identityKey: try VerifyingKey(rawRepresentation: Array(buffer: key)),
                        registeredAt: Timestamp(storedMilliseconds: registeredAt),
                        lastSeenAt: lastSeenAt.map(Timestamp.init(storedMilliseconds:)),
                        queuedEnvelopes: Int(envelopes),
                        queuedBytes: Int(bytes)
                    )
                )
            }
            return accounts
        }
    }

    public func identityKeyBytes(for handles: [Handle]) async throws -> [Handle: [UInt8]] {
        guard !handles.isEmpty else { return [:] }
        let logger = self.logger
        return try await reading { connection in
            var keys: [Handle: [UInt8]] = [:]
            let rows = try await connection.query(ifOpen:
                "SELECT handle, identity_key FROM account WHERE handle = ANY(\(handles.map(\.rawValue))::text[])",
                logger: logger
            )
            for try await (handle, key) in rows.decode((String, ByteBuffer).self) {
                keys[try Handle(handle)] = Array(buffer: key)
            }
            return keys
        }
    }

    public func pendingEnrollments(at now: Timestamp) async throws -> [PendingEnrollment] {
        let logger = self.logger
        return try await reading { connection in
            var pending: [PendingEnrollment] = []
            let rows = try await connection.query(ifOpen:
                """
                SELECT handle, expires_at FROM enrollment WHERE used_at IS NULL AND expires_at > \(now.signedMilliseconds)
                ORDER BY handle COLLATE "C", expires_at
                """,
                logger: logger
            )
            for try await (handle, expiresAt) in rows.decode((String, Int64).self) {
                pending.append(PendingEnrollment(handle: try Handle(handle), expiresAt: Timestamp(storedMilliseconds: expiresAt)))
            }
            return pending
        }
    }

    public func recordLogin(_ handle: Handle, at: Timestamp) async throws {
        let logger = self.logger
        let now = at.signedMilliseconds
        let resolution = AccountSummary.lastSeenResolutionMilliseconds
        // One statement, which commits by itself: no BEGIN and COMMIT round trips on the login path.
        _ = try await pool.withConnection { connection in
            try await connection.query(ifOpen:
                """
                UPDATE account SET last_seen_at = \(now)
                WHERE handle = \(handle.rawValue) AND (last_seen_at IS NULL OR last_seen_at <= \(now) - \(resolution))
                """,
                logger: logger
            )
        }
    }

    public func revoke(_ handle: Handle, droppingQueue: Bool, now: Timestamp) async throws -> Revocation? {
        let logger = self.logger
        let origin = self.origin
        return try await transaction { connection in
            // The prekeys go with the account (ON DELETE CASCADE): nobody can seal to the revoked key any more.
            guard
                let key = try await connection.query(ifOpen:
                    "DELETE FROM account WHERE handle = \(handle.rawValue) RETURNING identity_key",
                    logger: logger
                ).decode(ByteBuffer.self).first(where: { _ in true })
            else { return nil }
            // A code made before the revocation (mailed, and perhaps as lost as the laptop) must not register the
            // handle after it.
            let voided = try await connection.query(ifOpen:
                "DELETE FROM enrollment WHERE handle = \(handle.rawValue) AND used_at IS NULL RETURNING 1",
                logger: logger
            ).collect().count
            var removal = Removal()
            if droppingQueue {
                let removed = try await Self.deleteEnvelopes(
                    connection,
                    """
                    DELETE FROM envelope WHERE recipient = \(handle.rawValue)
                    RETURNING sequence, envelope_id, sender, recipient
                    """,
                    logger: logger
                )
                removal = try await Self.settle(connection, removed.map { ($0, .expired) }, now: now, origin: origin, logger: logger)
            }
            let kept = try await Self.count(
                connection,
                "SELECT COUNT(*) FROM envelope WHERE recipient = \(handle.rawValue)",
                logger: logger
            )
            return Revocation(
                identityKey: try VerifyingKey(rawRepresentation: Array(buffer: key)),
                keptEnvelopes: kept,
                removal: removal,
                voidedCodes: voided
            )
        }
    }
}
