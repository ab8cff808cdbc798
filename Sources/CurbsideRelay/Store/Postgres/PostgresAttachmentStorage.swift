import CurbsideDigest
import CurbsideWire
import Logging
import NIOCore
import PostgresNIO

/// Attachment bytes in PostgreSQL: each chunk a `bytea` row of `attachment_chunk`, inserted in the transaction that
/// advances the upload's `held` count, so an upload is exactly as far as its committed chunks, whichever relay
/// process received them. Not large objects: rows replicate to a standby like the rest, and go with their
/// attachment row (ON DELETE CASCADE) when the store forgets it.
public struct PostgresAttachmentStorage: AttachmentStorage {
    let pool: PostgresPool
    let logger: Logger

    /// Attachment bytes in the database of `store`.
    public init(store: PostgresRelayStore) {
        self.pool = store.pool
        self.logger = store.logger
    }

    public func progress(_ key: Int64) async throws -> UInt64? {
        let logger = self.logger
        return try await pool.withConnection { connection in
            try await connection.query(ifOpen: "SELECT held, size, complete FROM attachment WHERE key = \(key)", logger: logger)
                .decode((Int64, Int64, Bool).self).first { _ in true }
                .map { UInt64($0.2 ? $0.1 : $0.0) }
        }
    }

    public func write(_ bytes: [UInt8], at offset: UInt64, to key: Int64, declaredSize: UInt64) async throws {
        let logger = self.logger
        let count = Int64(bytes.count)
        try await PostgresRelayStore.transaction(pool, logger: logger) { connection in
            // The row lock this UPDATE takes orders two writers of one upload: the second sees the first's `held`.
            let advanced = try await connection.query(ifOpen:
                """
                UPDATE attachment SET held = held + \(count)
                WHERE key = \(key) AND held = \(Int64(offset)) AND NOT complete AND held + \(count) <= size
                RETURNING held
                """,
                logger: logger
            ).collect().count
            guard advanced == 1 else {
                let state = try await connection.query(ifOpen: "SELECT held, size, complete FROM attachment WHERE key = \(key)", logger: logger)
                    .decode((Int64, Int64, Bool).self).first { _ in true }
                // Gone (expired or discarded): nothing is held; the client asks again and finds no upload.
                guard let (held, size, complete) = state else { throw BlobStore.Failure.offsetMismatch(held: 0) }
                let holds = UInt64(complete ? size : held)
                guard holds == offset else { throw BlobStore.Failure.offsetMismatch(held: holds) }
                throw BlobStore.Failure.beyondDeclaredSize(declared: UInt64(size))
            }
            guard count > 0 else { return }
            try await connection.query(ifOpen:
                "INSERT INTO attachment_chunk (attachment, \"offset\", data) VALUES (\(key), \(Int64(offset)), \(ByteBuffer(bytes: bytes)))",
                logger: logger
            )
        }
    }

    public func commit(_ key: Int64, declaredSize: UInt64, sha256: [UInt8]) async throws {
        let logger = self.logger
        let matches = try await PostgresRelayStore.transaction(pool, logger: logger) { connection -> Bool in
            // Locks the upload: no chunk is added while its bytes are hashed.
            guard
                let (held, complete) = try await connection.query(ifOpen:
                    "SELECT held, complete FROM attachment WHERE key = \(key) FOR UPDATE",
                    logger: logger
                ).decode((Int64, Bool).self).first(where: { _ in true })
            else { throw BlobStore.Failure.incomplete(held: 0, declared: declaredSize) }
            if complete { return true }
            guard UInt64(held) == declaredSize else {
                throw BlobStore.Failure.incomplete(held: UInt64(held), declared: declaredSize)
            }
            return constantTimeEquals(try await Self.chunkDigest(of: key, on: connection, logger: logger).sha256, sha256)
        }
        guard matches else {
            // Discarded, so the upload starts again at 0.
            try await PostgresRelayStore.transaction(pool, logger: logger) { connection in
                try await connection.query(ifOpen: "DELETE FROM attachment_chunk WHERE attachment = \(key)", logger: logger)
                try await connection.query(ifOpen: "UPDATE attachment SET held = 0 WHERE key = \(key) AND NOT complete", logger: logger)
            }
            throw BlobStore.Failure.hashMismatch
        }
    }

    /// The SHA-256 of the bytes attachment `key`'s chunks hold, read in order, and how many there are.
    ///
    /// - Throws: `BlobStore.Failure.io` when the chunks leave a gap.
    static func chunkDigest(of key: Int64, on connection: PostgresConnection, logger: Logger) async throws -> (sha256: [UInt8], bytes: Int64) {
        let hasher = FileSHA256()
        var next: Int64 = 0
        for try await (offset, data) in try await connection.query(ifOpen:
            "SELECT \"offset\", data FROM attachment_chunk WHERE attachment = \(key) ORDER BY \"offset\"",
            logger: logger
        ).decode((Int64, ByteBuffer).self) {
            guard offset == next else { throw BlobStore.Failure.io("attachment \(key) has a gap at byte \(next)") }
            data.withUnsafeReadableBytes { hasher.update($0) }
            next += Int64(data.readableBytes)
        }
        return (hasher.finalize(), next)
    }

    public func read(_ key: Int64, from offset: UInt64, length: Int) async throws -> [UInt8] {
        guard length > 0 else { return [] }
        let logger = self.logger
        let start = Int64(offset)
        let end = start + Int64(length)
        return try await pool.withConnection { connection in
            var out: [UInt8] = []
            out.reserveCapacity(length)
            for try await (chunkOffset, data) in try await connection.query(ifOpen:
                """
                SELECT "offset", data FROM attachment_chunk
                WHERE attachment = \(key) AND "offset" < \(end) AND "offset" >= COALESCE(
                    (SELECT max("offset") FROM attachment_chunk WHERE attachment = \(key) AND "offset" <= \(start)), 0)
                ORDER BY "offset"
                """,
                logger: logger
            ).decode((Int64, ByteBuffer).self) {
                let chunkEnd = chunkOffset + Int64(data.readableBytes)
                // Contiguous from `start` only: a gap (the attachment deleted meanwhile) ends the read short.
                guard chunkOffset <= start + Int64(out.count), chunkEnd > start + Int64(out.count) else { continue }
                let from = Int(start + Int64(out.count) - chunkOffset)
                let to = Int(min(chunkEnd, end) - chunkOffset)
                data.withUnsafeReadableBytes { out.append(contentsOf: $0[from..<to]) }
            }
            return out
        }
    }

    /// Nothing to do: a blob's rows go with its attachment row.
    public func delete(_ keys: [Int64]) async throws {}

    /// None: no bytes live apart from the store's records.
    public func fileKeys() async throws -> Set<Int64> { [] }

    public func removeFiles(_ files: Set<Int64>, notIn keep: Set<Int64>) async throws -> Int { 0 }

    /// The database's disk is the database server's: a full one fails the write with `storage_full` (SQLSTATE
    /// 53100), and the operator watches it there.
    public func availableBytes() async throws -> UInt64 { .max }
}
