import CurbsideWire

/// Why a client operation failed, with what the user can do about it.
///
/// Callers decide by `code` (and, when the relay refused, by `relayError.code`), never by `message`, which is for
/// people. Every code belongs to a `Category`, which the CLI turns into its exit status, so scripts can tell a typo
/// from a key change from a dead network.
public struct ClientError: ErrorDomain, Hashable, CustomStringConvertible {
    /// A stable code of the client library. These never cross the wire, so they are not in spec/errors.md; they are
    /// numbered from 1001 upwards, a hundred per category (1001 usage, 1101 profile, 1201 trust, 1301 network,
    /// 1401 protocol), and never renumbered or reused.
    public typealias Code = ErrorCode<ClientError>

    /// The kind of failure a code belongs to (its hundred); the CLI's exit status follows it.
    public enum Category: String, Sendable, Hashable {
        /// The request itself is wrong: an unknown message id, a malformed handle, a missing profile.
        case usage
        /// The profile cannot be opened: wrong passphrase, damaged or missing files.
        case profile
        /// A contact's identity is not what was pinned, or a safety number does not match: nothing was sent.
        case trust
        /// The relay cannot be reached (or its certificate is not the pinned one); queued work is kept.
        case network
        /// The relay or a peer broke the protocol, or refused the request.
        case `protocol`
    }

    /// What failed, stable across versions: decide on this.
    public let code: Code
    /// What happened, in one sentence without content or keys.
    public let message: String
    /// What to do about it.
    public let hint: String?
    /// The relay's refusal as its error frame carried it, when the relay refused: its code is the number listed in
    /// spec/errors.md (`unknown_handle`, `quota_exceeded`, …), kept as it came, so callers can switch on it.
    public let relayError: RelayError?

    /// An error with `code`, a sentence for people, what to do about it, and the relay's refusal when there was one.
    public init(_ code: Code, _ message: String, hint: String? = nil, relayError: RelayError? = nil) {
        self.code = code
        self.message = message
        self.hint = hint
        self.relayError = relayError
    }

    /// The category of `code`: its hundred.
    public var category: Category {
        switch code.rawValue {
        case 1001...1099: .usage
        case 1101...1199: .profile
        case 1201...1299: .trust
        case 1301...1399: .network
        default: .protocol
        }
    }

    /// The sentence for people.
    public var description: String { message }

    /// The relay cannot be talked to now, whatever the request: a flush stops and a sync reconnects. Not so for
    /// `.recipientKeysExpired`, a network error about one recipient that holds up only the messages to it.
    var meansRelayUnavailable: Bool {
        code == .unreachable || code == .certificateMismatch || code == .relayUnavailable
    }

    /// Every code, in number order.
    public static let allCodes: [Code] = [
        .invalidArgument, .unknownMessage, .unknownContact, .unknownRecipient, .noProfile, .profileExists,
        .unsupportedAttachment, .fileNotAccessible, .ambiguousMessageID,
        .wrongPassphrase, .profileDamaged, .profileNotWritable, .identityRejected, .concurrentUpdate,
        .keyChanged, .safetyNumberMismatch, .untrustedSender,
        .unreachable, .certificateMismatch, .relayUnavailable, .recipientKeysExpired,
        .refused, .protocolViolation, .invalidBundle,
    ]

    static func wrongPassphrase() -> ClientError {
        ClientError(.wrongPassphrase, "the passphrase does not open this profile", hint: "check CURBSIDE_PASSPHRASE or type it again")
    }

    static func unreachable(_ endpoint: RelayEndpoint, _ why: String) -> ClientError {
        ClientError(
            .unreachable,
            "cannot reach the relay at \(endpoint): \(why)",
            hint: "anything you sent is kept in the outbox; `curbside sync` sends it when the relay can be reached"
        )
    }

    /// What to check when an enrollment code is refused, by its shape here or by the relay.
    static let enrollmentHint =
        "check the code and the handle with the relay's operator; codes are single-use and expire after 7 days (`curbside relay enroll` makes a new one)"

    /// An enrollment code that cannot be one, whatever the relay holds.
    public static func malformedEnrollmentCode() -> ClientError {
        ClientError(
            .invalidArgument,
            "the enrollment code must be 20 characters of 0-9 and A-Z (without I, L, O, U), dashes allowed",
            hint: enrollmentHint
        )
    }

    static func keyChanged(_ handle: Handle) -> ClientError {
        ClientError(
            .keyChanged,
            "\(handle)'s identity key has changed since you pinned it; nothing was sent",
            hint: "compare the new safety number with \(handle) in person or by phone (`curbside contacts show \(handle)`), "
                + "then `curbside contacts verify \(handle) NUMBER`"
        )
    }

    static func refused(_ error: RelayError) -> ClientError {
        ClientError(.refused, "the relay refused: \(error.code.identifier) (\(error.detail))", hint: hint(for: error), relayError: error)
    }

    /// What to do about a relay's refusal, for the codes where the user can do something.
    static func hint(for error: RelayError) -> String? {
        switch error.code {
        case .unknownHandle: "check the handle; the colleague must have run `curbside init` on this relay"
        case .quotaExceeded: "the recipient's queue on the relay is full; try again later"
        case .storageFull, .storageFailed: "the relay is short of disk space; try again later"
        case .rateLimited: "the relay limits how fast this is done; wait a minute and try again"
        case .relayBusy: "the relay is receiving a lot at once; `curbside sync` tries again"
        case .storeUnavailable: "the relay's database is changing over; `curbside sync` tries again in a moment"
        case .loginFailed: "this profile's identity is not the one the relay has for its handle"
        case .enrollmentInvalid: enrollmentHint
        case .handleTaken: "the handle is registered already; choose another or ask the operator"
        default: nil
        }
    }
}

extension ErrorCode where Domain == ClientError {
    // Usage: the request is wrong.

    /// A malformed argument: a handle, message id, fingerprint, enrollment code, passphrase or consult field.
    public static var invalidArgument: Self { .init(1001, "invalid_argument", "invalid argument") }
    /// No message with this id in the profile.
    public static var unknownMessage: Self { .init(1002, "unknown_message", "unknown message") }
    /// The handle is not a contact of this profile.
    public static var unknownContact: Self { .init(1003, "unknown_contact", "unknown contact") }
    /// The relay has no such handle, or it has published no prekeys; `relayError` is the relay's `unknown_handle`.
    public static var unknownRecipient: Self { .init(1004, "unknown_recipient", "unknown recipient") }
    /// There is no profile where one was looked for.
    public static var noProfile: Self { .init(1005, "no_profile", "no profile") }
    /// A profile, or other files, are where a new profile was to be created.
    public static var profileExists: Self { .init(1006, "profile_exists", "profile exists") }
    /// A file to attach that is empty, not what it claims, or whose metadata cannot be checked.
    public static var unsupportedAttachment: Self { .init(1007, "unsupported_attachment", "unsupported attachment") }
    /// A file the user named cannot be read or written.
    public static var fileNotAccessible: Self { .init(1008, "file_not_accessible", "file not accessible") }
    /// A shortened message id that more than one message's id begins with; the message lists them.
    public static var ambiguousMessageID: Self { .init(1009, "ambiguous_message_id", "ambiguous message id") }

    // Profile: the profile cannot be used.

    /// The passphrase does not open the identity file.
    public static var wrongPassphrase: Self { .init(1101, "wrong_passphrase", "wrong passphrase") }
    /// The identity file or the profile database is damaged, incomplete or from another profile.
    public static var profileDamaged: Self { .init(1102, "profile_damaged", "profile damaged") }
    /// A file of the profile cannot be read, written or locked.
    public static var profileNotWritable: Self { .init(1103, "profile_not_writable", "profile file not accessible") }
    /// The relay does not accept this profile's identity for its handle; `relayError` is its `login_failed`.
    public static var identityRejected: Self { .init(1104, "identity_rejected", "identity rejected") }
    /// Another process changed the same record meanwhile; the next sync settles it.
    public static var concurrentUpdate: Self { .init(1105, "concurrent_update", "concurrent update") }

    // Trust: nothing was sent or shown.

    /// A contact presents another identity key than the pinned one; sending to it waits until it is verified.
    public static var keyChanged: Self { .init(1201, "key_changed", "identity key changed") }
    /// The safety number given is not the one of the contact's key; nothing changed.
    public static var safetyNumberMismatch: Self { .init(1202, "safety_number_mismatch", "safety number mismatch") }
    /// A message signed by a changed, unverified key: it stays hidden.
    public static var untrustedSender: Self { .init(1203, "untrusted_sender", "untrusted sender") }

    // Network: queued work waits and goes out later by itself.

    /// The relay cannot be reached, or the connection was lost or timed out.
    public static var unreachable: Self { .init(1301, "unreachable", "relay unreachable") }
    /// The relay did not present the pinned certificate key.
    public static var certificateMismatch: Self { .init(1302, "certificate_mismatch", "certificate mismatch") }
    /// The relay is there but cannot serve now (rate limited, busy, storage); `relayError` says which.
    public static var relayUnavailable: Self { .init(1303, "relay_unavailable", "relay unavailable") }
    /// The recipient's published prekeys have expired; the message waits until the recipient is back online.
    public static var recipientKeysExpired: Self { .init(1304, "recipient_keys_expired", "recipient keys expired") }

    // Protocol: refused, or broken.

    /// The relay refused the request; `relayError` carries its code as sent.
    public static var refused: Self { .init(1401, "refused", "refused by the relay") }
    /// The relay or a peer sent something the protocol does not allow here.
    public static var protocolViolation: Self { .init(1402, "protocol_violation", "protocol violation") }
    /// A recipient's prekey bundle does not verify.
    public static var invalidBundle: Self { .init(1403, "invalid_bundle", "invalid prekey bundle") }
}

/// `--json` and integrators' logs carry an error as its stable code and category, the sentence and the hint, and the
/// relay's refusal as its spec/errors.md identifier and public detail.
extension ClientError: Encodable {
    private enum CodingKeys: String, CodingKey {
        case code, number, category, message, hint, relayError
    }

    private enum RelayErrorKeys: String, CodingKey {
        case code, number, detail
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(code.identifier, forKey: .code)
        try container.encode(code.rawValue, forKey: .number)
        try container.encode(category.rawValue, forKey: .category)
        try container.encode(message, forKey: .message)
        try container.encodeIfPresent(hint, forKey: .hint)
        if let relayError {
            var relay = container.nestedContainer(keyedBy: RelayErrorKeys.self, forKey: .relayError)
            try relay.encode(relayError.code.identifier, forKey: .code)
            try relay.encode(relayError.code.rawValue, forKey: .number)
            try relay.encode(relayError.detail, forKey: .detail)
        }
    }
}
