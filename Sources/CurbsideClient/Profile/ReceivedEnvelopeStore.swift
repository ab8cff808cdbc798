import CurbsideWire
import Foundation
import GRDB

/// The SQL of the `seen_envelope` table (envelopes already opened or rejected here, so a re-delivery is settled the
/// same way and never opened again) and of the `failure` table (envelopes that could not be opened).
enum ReceivedEnvelopeStore {
    /// How an envelope already opened or rejected here was settled, if it was.
    static func settled(_ db: Database, _ envelopeID: Data) throws -> Disposition? {
        guard let row = try Row.fetchOne(db, sql: "SELECT rejected_reason FROM seen_envelope WHERE envelope_id = ?", arguments: [envelopeID]) else {
            return nil
        }
        if let raw = row["rejected_reason"] as Int64?, let reason = Receipt.FailureReason(rawValue: UInt8(clamping: raw)) {
            return .reject(reason)
        }
        return .acknowledge
    }

    static func markSeen(_ db: Database, _ envelopeID: Data, at now: Timestamp, rejected reason: Receipt.FailureReason?) throws {
        try db.execute(
            sql: "INSERT OR REPLACE INTO seen_envelope (envelope_id, at, rejected_reason) VALUES (?, ?, ?)",
            arguments: [envelopeID, now.signedMilliseconds, reason.map { Int64($0.rawValue) }]
        )
    }

    /// Forgets envelope ids seen before `cutoff` (milliseconds since 1970).
    static func forgetSeen(_ db: Database, before cutoff: Int64) throws {
        try db.execute(sql: "DELETE FROM seen_envelope WHERE at < ?", arguments: [cutoff])
    }

    /// Records an envelope that could not be opened: the reason its sender is told, and `detail`, an error
    /// identifier then `: ` and details.
    static func recordFailure(
        _ db: Database,
        _ envelopeID: Data,
        sender: Handle,
        at now: Timestamp,
        reason: Receipt.FailureReason,
        detail: String
    ) throws {
        try db.execute(
            sql: "INSERT INTO failure (envelope_id, relay_sender, at, rejected_reason, reason) VALUES (?, ?, ?, ?, ?)",
            arguments: [envelopeID, sender.rawValue, now.signedMilliseconds, Int64(reason.rawValue), detail]
        )
    }

    static func hasFailure(_ db: Database, _ envelopeID: Data) throws -> Bool {
        try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM failure WHERE envelope_id = ?)", arguments: [envelopeID]) ?? false
    }

    /// The envelopes that could not be opened, newest first.
    static func failures(_ db: Database) throws -> [UnopenedEnvelope] {
        let sql = "SELECT seq, relay_sender, at, rejected_reason, reason, shown FROM failure ORDER BY at DESC, seq DESC"
        return try Row.fetchAll(db, sql: sql).map { row in
            let detail: String = row["reason"]
            let reason = Receipt.FailureReason(rawValue: UInt8(clamping: row["rejected_reason"] as Int64)) ?? .other
            return UnopenedEnvelope(
                sequence: row["seq"],
                sender: row["relay_sender"],
                at: UInt64(clamping: row["at"] as Int64),
                reason: RejectionReason(reason),
                detail: String(detail.prefix { $0 != ":" }),
                shown: row["shown"]
            )
        }
    }

    /// Marks the failures up to `sequence` reported.
    static func markFailuresShown(_ db: Database, through sequence: Int64) throws {
        try db.execute(sql: "UPDATE failure SET shown = 1 WHERE shown = 0 AND seq <= ?", arguments: [sequence])
    }
}
