import CurbsideWire

/// What the relay keeps, behind an interface narrow enough for a second backend (spec/relay.md; this is the part
/// for accounts and the key directory; envelopes and attachments follow).
///
/// Implementations make each method one atomic transaction; callers hold no locks. Records are stored as their
/// canonical encodings and checked by the layer above before they get here.
public protocol RelayStore: Sendable {
    /// Records an enrollment code (by its SHA-256) that lets `handle` register until `expiresAt`.
    func addEnrollment(handle: Handle, codeHash: [UInt8], expiresAt: Timestamp) async throws

    /// Binds `handle` to `identityKey` if `codeHash` names an unused, unexpired code for that handle; marks the code
    /// used in the same transaction.
    ///
    /// - Throws: `RelayError.enrollmentInvalid` (unknown, used, expired, or for another handle),
    ///   `.handleTaken` (the handle or the key is registered already).
    func register(handle: Handle, identityKey: VerifyingKey, codeHash: [UInt8], now: Timestamp) async throws

    /// The identity key registered for `handle`, if any.
    func identityKey(for handle: Handle) async throws -> VerifyingKey?

    /// Replaces the signed prekey (when given) and adds one-time prekeys; ids already present are kept as they were.
    func storePrekeys(for handle: Handle, signedPrekey: SignedPrekey?, oneTimePrekeys: [OneTimePrekey]) async throws

    /// How many one-time prekeys the relay holds for `handle`.
    func oneTimePrekeyCount(for handle: Handle) async throws -> Int

    /// The bundle for `handle`, with one one-time prekey removed from the store in the same transaction (so no
    /// one-time prekey is ever handed out twice), and how many remain. Nil when the handle has no signed prekey.
    func takeBundle(for handle: Handle) async throws -> (bundle: PrekeyBundle, oneTimePrekeysLeft: Int)?

    /// Stores an envelope for `recipient` unless the same bytes are stored already; returns once the transaction is
    /// durable.
    func enqueue(
        _ body: [UInt8],
        from sender: Handle,
        to recipient: Handle,
        now: Timestamp,
        expiresAt: Timestamp
    ) async throws -> EnqueueOutcome

    /// How many envelopes, and how many bytes of them, wait for `recipient`.
    func queueUsage(for recipient: Handle) async throws -> (envelopes: Int, bytes: Int)

    /// Envelopes for `recipient` after sequence `cursor`, oldest first, at most `limit` and at most `maximumBytes` of
    /// bodies (but always the first one, if any).
    func pending(for recipient: Handle, after cursor: Int64, limit: Int, maximumBytes: Int) async throws -> [QueuedEnvelope]

    /// When the envelope `id` queued for `recipient` was stored and expires, if it is queued.
    func storedEnvelope(_ id: EnvelopeID, for recipient: Handle) async throws -> (storedAt: Timestamp, expiresAt: Timestamp)?

    /// Deletes the envelopes among `ids` that are addressed to `recipient` (others' are left alone) and records a
    /// delivered-to-device notice for each one's sender, in the same transaction. Returns the notices recorded.
    func acknowledge(_ ids: [EnvelopeID], by recipient: Handle, now: Timestamp) async throws -> [SenderNotice]

    /// Deletes every envelope whose expiry is at or before `now` and records an expiry notice for its sender, in the
    /// same transaction. Returns the notices recorded.
    func expire(now: Timestamp) async throws -> [SenderNotice]

    /// Notices for `sender` after sequence `cursor`, oldest first.
    func notices(for sender: Handle, after cursor: Int64, limit: Int) async throws -> [SenderNotice]

    /// Deletes `sender`'s notices up to and including sequence `sequence` (the client has them).
    func removeNotices(for sender: Handle, through sequence: Int64) async throws

    /// Counts for `curbside relay status`.
    func statistics() async throws -> RelayStatistics
}

/// What `curbside relay status` reports.
public struct RelayStatistics: Sendable, Hashable {
    public var accounts: Int
    public var oneTimePrekeys: Int
    public var pendingEnrollments: Int
    public var queuedEnvelopes: Int
    public var queuedBytes: Int
}
