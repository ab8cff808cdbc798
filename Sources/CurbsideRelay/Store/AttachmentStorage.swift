/// Where a relay keeps attachment bytes: files on its disk beside a SQLite store (`BlobStore`), or rows of the
/// database beside a PostgreSQL store (`PostgresAttachmentStorage`), so that any relay process on that database
/// continues an upload another began and serves any download.
///
/// Blobs are named by their key in the relay store. Failures are `BlobStore.Failure`s (or `RelayError`s, such as
/// `store_unavailable`), which the session answers without closing the connection.
public protocol AttachmentStorage: Sendable {
    /// How many bytes of `key` the relay holds: the declared size once complete, the partial length while uploading,
    /// nil if it has neither.
    func progress(_ key: Int64) async throws -> UInt64?

    /// Appends `bytes` at `offset`, which must be exactly what the relay holds (`offsetMismatch(held:)` otherwise),
    /// never past `declaredSize` (`beyondDeclaredSize`). Durable when this returns.
    func write(_ bytes: [UInt8], at offset: UInt64, to key: Int64, declaredSize: UInt64) async throws

    /// Checks the size and the SHA-256 and makes the blob durable and complete; idempotent once committed. On a hash
    /// mismatch the bytes are discarded (`hashMismatch`) and the upload starts again at 0.
    func commit(_ key: Int64, declaredSize: UInt64, sha256: [UInt8]) async throws

    /// Up to `length` bytes of committed blob `key` from `offset`: fewer at the end, or if it was deleted meanwhile.
    func read(_ key: Int64, from offset: UInt64, length: Int) async throws -> [UInt8]

    /// Removes the bytes of blobs the store has forgotten.
    func delete(_ keys: [Int64]) async throws

    /// The keys of every blob held apart from the store's records (files), to find those a crash left behind.
    func fileKeys() async throws -> Set<Int64>

    /// Removes the blobs in `files` that are not in `keep`; returns how many.
    @discardableResult
    func removeFiles(_ files: Set<Int64>, notIn keep: Set<Int64>) async throws -> Int

    /// Bytes free for new attachments, measured against the relay's reserve (`minimumFreeDiskBytes`).
    func availableBytes() async throws -> UInt64
}

extension BlobStore: AttachmentStorage {}
