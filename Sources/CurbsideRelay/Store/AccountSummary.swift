import CurbsideWire

/// One registered account as `curbside relay accounts` shows it: who, with which key, since when, when last seen,
/// and what waits for it.
public struct AccountSummary: Sendable, Hashable {
    /// How finely last seen is kept: a login within this long of the recorded one changes nothing and is not written
    /// (`RelayStore.recordLogin`, and the relay's login, which skips the write altogether).
    public static let lastSeenResolutionMilliseconds: Int64 = 60_000

    public let handle: Handle
    public let identityKey: VerifyingKey
    public let registeredAt: Timestamp
    /// The last successful login or registration, to the minute (`RelayStore.recordLogin`); nil before the first
    /// one this store recorded.
    public let lastSeenAt: Timestamp?
    /// Envelopes waiting for the account, and their bytes with the attachments they name.
    public let queuedEnvelopes: Int
    public let queuedBytes: Int

    public init(
        handle: Handle,
        identityKey: VerifyingKey,
        registeredAt: Timestamp,
        lastSeenAt: Timestamp?,
        queuedEnvelopes: Int,
        queuedBytes: Int
    ) {
        self.handle = handle
        self.identityKey = identityKey
        self.registeredAt = registeredAt
        self.lastSeenAt = lastSeenAt
        self.queuedEnvelopes = queuedEnvelopes
        self.queuedBytes = queuedBytes
    }
}

/// An enrollment code not used yet, as `curbside relay accounts` shows it (never the code or its hash).
public struct PendingEnrollment: Sendable, Hashable {
    public let handle: Handle
    public let expiresAt: Timestamp

    public init(handle: Handle, expiresAt: Timestamp) {
        self.handle = handle
        self.expiresAt = expiresAt
    }
}

/// What `RelayStore.revoke` did to an account (spec/relay.md §Revocation).
public struct Revocation: Sendable, Hashable {
    /// The key the account had; its logins now fail.
    public let identityKey: VerifyingKey
    /// Envelopes left queued for the handle (none when the queue was dropped): they expire as usual, or reach the
    /// device that registers the handle next, which cannot open them and rejects them.
    public let keptEnvelopes: Int
    /// The dropped envelopes' `expired` notices for their senders, and attachment files no envelope names any more.
    public let removal: Removal
    /// Enrollment codes for the handle that were not used yet, voided: nobody registers the handle with a code made
    /// before the revocation.
    public let voidedCodes: Int

    public init(identityKey: VerifyingKey, keptEnvelopes: Int, removal: Removal, voidedCodes: Int) {
        self.identityKey = identityKey
        self.keptEnvelopes = keptEnvelopes
        self.removal = removal
        self.voidedCodes = voidedCodes
    }
}
