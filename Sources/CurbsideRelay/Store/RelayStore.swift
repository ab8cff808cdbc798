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

    /// Checks, changing nothing, what `register` would check without the key: `codeHash` names an unused, unexpired
    /// code for `handle`, and `handle` is not registered.
    ///
    /// - Throws: `RelayError.enrollmentInvalid`, `.handleTaken`.
    func checkEnrollment(handle: Handle, codeHash: [UInt8], now: Timestamp) async throws

    /// The identity key registered for `handle`, if any.
    func identityKey(for handle: Handle) async throws -> VerifyingKey?

    /// What a login as `handle` checks and notes: its identity key and when it last logged in (nil if never, or if
    /// the store does not say), in one read; nil when `handle` is not registered. The relay skips `recordLogin` when
    /// the last login is recent enough that the write would change nothing.
    func loginKey(for handle: Handle) async throws -> (key: VerifyingKey, lastSeenAt: Timestamp?)?

    /// Replaces the signed prekey (when given) and adds one-time prekeys; ids already present are kept as they were.
    func storePrekeys(for handle: Handle, signedPrekey: SignedPrekey?, oneTimePrekeys: [OneTimePrekey]) async throws

    /// How many one-time prekeys the relay holds for `handle`.
    func oneTimePrekeyCount(for handle: Handle) async throws -> Int

    /// The bundle for `handle`, with one one-time prekey removed from the store in the same transaction (so no
    /// one-time prekey is ever handed out twice) unless `withOneTimePrekey` is false, and how many remain. Nil when
    /// the handle has no signed prekey.
    func takeBundle(for handle: Handle, withOneTimePrekey: Bool) async throws -> (bundle: PrekeyBundle, oneTimePrekeysLeft: Int)?

    /// Stores an envelope for its recipient unless the same bytes are stored for it already, the sender's share of
    /// the queue or the queue is full, or an attachment it names is not the sender's and committed; returns once the
    /// transaction is durable. Named attachments are kept while the envelope waits, and their bytes count against
    /// the recipient's queue (and the sender's share of it) once for every envelope that names them.
    ///
    /// `whenCommitted`, if given, is called with the outcome once the transaction that decided it has committed
    /// (durably) and before this returns, on the thread that saw the commit finish; never when the transaction fails.
    /// The relay writes the push and the answer from there, so they do not wait for this task to be scheduled again.
    /// It must not block: the store's next transaction waits for it. What it adds to its `DurableWrites` is written
    /// once every send of the transaction has had its call.
    func enqueue(_ submission: Submission, whenCommitted: SendCompletion?) async throws -> EnqueueOutcome

    /// Stores an envelope as `enqueue` does, without waiting: `settle` is called once, with the outcome once the
    /// transaction that decided it has committed (durably), or with the error that failed it, on the thread that saw
    /// it finish; like a `SendCompletion`, it must not block. The relay's pipelined sends are answered from there.
    func submit(_ submission: Submission, settle: @escaping SendSettlement)

    /// How many envelopes, and how many bytes of them (each with the attachments it names), wait for `recipient`.
    func queueUsage(for recipient: Handle) async throws -> (envelopes: Int, bytes: Int)

    /// Envelopes for `recipient` after sequence `cursor`, oldest first, at most `limit` and at most `maximumBytes` of
    /// them as a `DeliveredEnvelope` encodes each, routing fields included (but always the first one, if any).
    func pending(for recipient: Handle, after cursor: Int64, limit: Int, maximumBytes: Int) async throws -> [QueuedEnvelope]

    /// When the envelope `id` queued for `recipient` was stored and expires, if it is queued.
    func storedEnvelope(_ id: EnvelopeID, for recipient: Handle) async throws -> (storedAt: Timestamp, expiresAt: Timestamp)?

    /// Deletes the envelopes among `ids` that are addressed to `recipient` (others' are left alone) and records a
    /// delivered-to-device notice for each one's sender, in the same transaction. Attachments no envelope refers to
    /// any more are forgotten with them.
    func acknowledge(_ ids: [EnvelopeID], by recipient: Handle, now: Timestamp) async throws -> Removal

    /// As `acknowledge`, but each sender's notice is `rejected` with the recipient's reason: the envelope reached the
    /// recipient's device and could not be opened there.
    func reject(_ rejections: [(id: EnvelopeID, reason: Receipt.FailureReason)], by recipient: Handle, now: Timestamp) async throws -> Removal

    /// Deletes every envelope whose expiry is at or before `now` and records an expiry notice for its sender, and
    /// every unreferenced upload whose expiry has passed, in the same transaction.
    func expire(now: Timestamp) async throws -> Removal

    /// Notices for `sender` after sequence `cursor`, oldest first.
    func notices(for sender: Handle, after cursor: Int64, limit: Int) async throws -> [SenderNotice]

    /// Deletes `sender`'s notices up to and including sequence `sequence` (the client has them).
    func removeNotices(for sender: Handle, through sequence: Int64) async throws

    /// Records an upload of `size` bytes named `id` for `owner`, or returns the one recorded; checks the owner's
    /// storage quota (every upload and attachment it has, counted at its declared size, and at most `maximumCount` of
    /// them) in the same transaction.
    func openUpload(owner: Handle, id: [UInt8], size: UInt64, expiresAt: Timestamp, quota: UInt64, maximumCount: Int) async throws
        -> UploadOpening

    /// `owner`'s upload named `id`, if any.
    func upload(owner: Handle, id: [UInt8]) async throws -> StoredAttachment?

    /// Forgets `owner`'s upload named `id`, committed or not, unless an envelope names it; returns the key of what was
    /// forgotten (its file is to be deleted), or nothing.
    func abandonUpload(owner: Handle, id: [UInt8]) async throws -> [Int64]

    /// Marks an upload committed (its file is durable and checked); it is deleted at `expiresAt` unless an envelope
    /// refers to it by then.
    func markCommitted(_ key: Int64, expiresAt: Timestamp) async throws

    /// Names `owner`'s uncommitted upload `key` (opened under a provisional id) `id`, with `size` as its size, in one
    /// transaction (spec/relay.md §Attachments, commit_upload_as). An uncommitted upload of `owner` already named `id`
    /// is forgotten; if a committed one is, `key` is forgotten instead. Returns the keys whose files are to go.
    func renameUpload(_ key: Int64, owner: Handle, to id: [UInt8], size: UInt64) async throws -> UploadRenaming

    /// A committed attachment named `id` that `account` may download: its own, or one an envelope queued for it
    /// refers to.
    func downloadable(_ id: [UInt8], by account: Handle) async throws -> StoredAttachment?

    /// The keys of every upload and attachment recorded (to remove files a crash left behind).
    func attachmentKeys() async throws -> Set<Int64>

    /// Counts for `curbside relay status`.
    func statistics() async throws -> RelayStatistics

    // Accounts, for operators (spec/relay.md §Revocation).

    /// Every registered account, ordered by handle.
    func accounts() async throws -> [AccountSummary]

    /// The identity keys registered for those of `handles` that are registered, as stored, in one read: the relay's
    /// check of its logged-in connections (RelayConfiguration.accountCheckInterval) compares them with the keys the
    /// connections logged in with. Not made into `VerifyingKey`s: that checks the point again (an Ed25519 subgroup
    /// check each), which for every connected handle every few seconds was the idle relay's largest cost, and a
    /// stored key was checked when it was registered.
    func identityKeyBytes(for handles: [Handle]) async throws -> [Handle: [UInt8]]

    /// Enrollment codes not used yet and valid at `now`, by handle then expiry: who may still register.
    func pendingEnrollments(at now: Timestamp) async throws -> [PendingEnrollment]

    /// Records that `handle` logged in or registered at `at`. Kept to the minute: a login within a minute of the
    /// recorded one writes nothing, so frequent logins do not each cost a write.
    func recordLogin(_ handle: Handle, at: Timestamp) async throws

    /// Removes `handle`'s account with its prekeys, in one transaction: its key no longer logs in, its bundle is
    /// `unknown_handle`, sends to it are `unknown_handle`, its enrollment codes not used yet are void, and the
    /// handle may be enrolled again (with a new key). With `droppingQueue`, the envelopes queued for it are deleted too, each with an `expired` notice for its
    /// sender; otherwise they stay queued until they expire or are fetched. Nil when the handle is not registered.
    func revoke(_ handle: Handle, droppingQueue: Bool, now: Timestamp) async throws -> Revocation?
}

/// What naming a provisional upload did (`RelayStore.renameUpload`).
public enum UploadRenaming: Sendable, Hashable {
    /// The upload is now named as asked; the files of the uncommitted upload it replaced, if any, are to go.
    case renamed(forgotten: [Int64])
    /// The owner had a committed upload of that name already: the provisional one was forgotten (its files are to go).
    case committedAlready(StoredAttachment, forgotten: [Int64])
    /// The upload was not there, or not uncommitted, any more.
    case unknown
}

/// What `curbside relay status` reports.
public struct RelayStatistics: Sendable, Hashable {
    public var accounts: Int
    public var oneTimePrekeys: Int
    public var pendingEnrollments: Int
    public var queuedEnvelopes: Int
    public var queuedBytes: Int
    /// Uploads and attachments, and their declared bytes.
    public var attachments: Int
    public var attachmentBytes: Int
}

/// What to do once a send's transaction has committed: given the send's outcome, adds the frames to write to
/// `DurableWrites` (`RelayStore.enqueue(_:whenCommitted:)`).
public typealias SendCompletion = @Sendable (EnqueueOutcome, inout DurableWrites) -> Void

/// What to do once a send submitted without waiting is decided (`RelayStore.submit(_:settle:)`): given its outcome,
/// or the error that failed its transaction, adds the frames to write to `DurableWrites`.
public typealias SendSettlement = @Sendable (Result<EnqueueOutcome, any Error>, inout DurableWrites) -> Void

extension RelayStore {
    /// `submit` by way of `enqueue`, awaited in a task of its own.
    public func submit(_ submission: Submission, settle: @escaping SendSettlement) {
        Task {
            do {
                _ = try await enqueue(submission) { outcome, writes in settle(.success(outcome), &writes) }
            } catch {
                var writes = DurableWrites()
                settle(.failure(error), &writes)
                writes.flush()
            }
        }
    }

    /// Stores an envelope; returns once the transaction is durable.
    public func enqueue(_ submission: Submission) async throws -> EnqueueOutcome {
        try await enqueue(submission, whenCommitted: nil)
    }

    /// Stores an envelope without attachments or queue limits (tests, tools).
    public func enqueue(
        _ body: [UInt8],
        from sender: Handle,
        to recipient: Handle,
        now: Timestamp,
        expiresAt: Timestamp
    ) async throws -> EnqueueOutcome {
        try await enqueue(Submission(body: body, sender: sender, recipient: recipient, storedAt: now, expiresAt: expiresAt))
    }
}
