/// Why `RelayMigration` stopped: a lowercase sentence naming what is wrong, and what to do about it.
///
/// Nothing in a message is secret: handles, table names, counts and digests, never a password, key or envelope byte.
public struct RelayMigrationError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable {
        /// There is no relay.sqlite to copy.
        case sourceMissing
        /// Another process has relay.sqlite open (a relay serving it, `relay status`, …).
        case sourceInUse
        /// The source contradicts itself: an attachment file missing or not matching its SHA-256, and the like.
        case sourceDamaged
        /// The source changed since the interrupted migration into this target began.
        case sourceChanged
        /// The target holds relay data, or tables of something else, and no migration of this source.
        case targetNotEmpty
        /// Another `relay migrate` is writing to the target.
        case targetInUse
        /// The target could not be used (a PostgreSQL error).
        case targetFailed
        /// After copying, the target does not hold what the source holds.
        case verificationFailed
    }

    public let code: Code
    public let message: String
    public let hint: String?
    /// For `verificationFailed`: every check, matching or not.
    public let checks: [RelayMigration.Check]

    init(_ code: Code, _ message: String, hint: String? = nil, checks: [RelayMigration.Check] = []) {
        self.code = code
        self.message = message
        self.hint = hint
        self.checks = checks
    }

    public var description: String { message }
}
