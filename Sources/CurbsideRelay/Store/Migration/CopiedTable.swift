import GRDB

/// One table `RelayMigration` copies row for row: its columns as both stores name them, and how PostgreSQL types them.
///
/// Rows are read from SQLite in rowid order (stable while the source is locked), so "the last rowid copied" says
/// exactly where an interrupted copy stands. Names here are constants of the code, never input, which is why they may
/// be spliced into SQL.
struct CopiedTable: Sendable {
    enum ColumnType: Sendable {
        case text, bytes, integer, boolean

        /// The PostgreSQL array type `unnest` reads a batch of this column from.
        var arrayType: String {
            switch self {
            case .text: "text[]"
            case .bytes: "bytea[]"
            case .integer: "bigint[]"
            case .boolean: "boolean[]"
            }
        }
    }

    struct Column: Sendable {
        let name: String
        let type: ColumnType
        let nullable: Bool

        init(_ name: String, _ type: ColumnType, nullable: Bool = false) {
            self.name = name
            self.type = type
            self.nullable = nullable
        }
    }

    let name: String
    let columns: [Column]
    /// Copied with the value SQLite gave it, over PostgreSQL's identity (`OVERRIDING SYSTEM VALUE`), so envelopes and
    /// notices keep their sequences and attachments their keys; nil for tables keyed by their content.
    let identity: String?

    /// `SELECT rowid, <columns> FROM <table> WHERE rowid > ? ORDER BY rowid`.
    var sourceQuery: String {
        "SELECT rowid, \(columns.map(\.name).joined(separator: ", ")) FROM \(name) WHERE rowid > ? ORDER BY rowid"
    }

    static let account = CopiedTable(
        name: "account",
        columns: [
            .init("handle", .text), .init("identity_key", .bytes), .init("registered_at", .integer),
            .init("last_seen_at", .integer, nullable: true),
        ],
        identity: nil
    )
    static let enrollment = CopiedTable(
        name: "enrollment",
        columns: [
            .init("code_hash", .bytes), .init("handle", .text), .init("expires_at", .integer),
            .init("used_at", .integer, nullable: true),
        ],
        identity: nil
    )
    static let signedPrekey = CopiedTable(
        name: "signed_prekey",
        columns: [.init("handle", .text), .init("record", .bytes)],
        identity: nil
    )
    static let oneTimePrekey = CopiedTable(
        name: "one_time_prekey",
        columns: [.init("handle", .text), .init("id", .integer), .init("record", .bytes)],
        identity: nil
    )
    /// `held` is not a SQLite column: it is what the attachment's file holds (`MigrationSource.attachments`).
    static let attachment = CopiedTable(
        name: "attachment",
        columns: [
            .init("key", .integer), .init("owner", .text), .init("sha256", .bytes), .init("size", .integer),
            .init("complete", .boolean), .init("expires_at", .integer, nullable: true), .init("held", .integer),
        ],
        identity: "key"
    )
    static let envelope = CopiedTable(
        name: "envelope",
        columns: [
            .init("sequence", .integer), .init("envelope_id", .bytes), .init("sender", .text),
            .init("recipient", .text),
            .init("body", .bytes), .init("stored_at", .integer), .init("expires_at", .integer),
            .init("attachment_bytes", .integer),
        ],
        identity: "sequence"
    )
    /// Copied with the envelopes that name the attachments, in their transaction.
    static let envelopeAttachment = CopiedTable(
        name: "envelope_attachment",
        columns: [.init("envelope", .integer), .init("attachment", .integer)],
        identity: nil
    )
    static let notice = CopiedTable(
        name: "notice",
        columns: [
            .init("sequence", .integer), .init("sender", .text), .init("kind", .integer), .init("envelope_id", .bytes),
            .init("recipient", .text), .init("at", .integer),
        ],
        identity: "sequence"
    )
}

/// One value of a copied row, as read from SQLite.
enum CopiedValue: Sendable, Hashable {
    case null
    case integer(Int64)
    case text(String)
    case bytes([UInt8])

    init(_ value: DatabaseValue) throws {
        switch value.storage {
        case .null: self = .null
        case .int64(let integer): self = .integer(integer)
        case .string(let text): self = .text(text)
        case .blob(let data): self = .bytes(Array(data))
        case .double: throw RelayMigrationError(.sourceDamaged, "a relay table holds a real number where none belongs")
        }
    }

    /// Bytes it takes in a batch (what `RelayMigration.Options.batchBytes` limits).
    var byteCount: Int {
        switch self {
        case .null, .integer: 8
        case .text(let text): text.utf8.count
        case .bytes(let bytes): bytes.count
        }
    }
}

/// A row read for copying: its rowid (where the copy stands once it is written) and its values in column order.
struct CopiedRow: Sendable {
    let rowid: Int64
    let values: [CopiedValue]
}
