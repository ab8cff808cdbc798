/// Why the relay refused a frame or a request (spec/relay.md §Errors). Codes are listed in spec/errors.md; the
/// relay sends the number in an error frame.
public struct RelayError: ErrorDomain, Hashable, CustomStringConvertible {
    public typealias Code = ErrorCode<RelayError>

    public let code: Code
    /// Public detail: lengths, types, handles; never envelope bytes or keys.
    public let detail: String

    public init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    /// The error an error frame carries; a code this version does not know keeps its number.
    public init(frameCode: UInt16, detail: String) {
        let known = Self.allCodes.first { $0.rawValue == frameCode }
        self.init(known ?? Code(frameCode, "unknown_\(frameCode)", "relay error \(frameCode)"), detail)
    }

    public var description: String { "relay: \(detail)" }

    /// The relay's disk failed or is full: a condition of the relay, not of the request, worth retrying later.
    public var isStorage: Bool { code == .storageFull || code == .storageFailed || code == .storeUnavailable }

    public static let allCodes: [Code] = [
        .malformedFrame, .unknownFrameType, .frameTooLarge, .notLoggedIn, .loginFailed, .rateLimited,
        .unexpectedFrame, .enrollmentInvalid, .handleTaken, .unknownHandle, .prekeyRejected, .timeout,
        .quotaExceeded, .offsetMismatch, .beyondDeclaredSize, .uploadIncomplete, .attachmentHashMismatch,
        .unknownAttachment, .storageFull, .storageFailed, .relayBusy,
        .storeUnavailable,
    ]
}

extension ErrorCode where Domain == RelayError {
    /// A frame whose length is below the minimum or whose body does not decode as its type says.
    public static var malformedFrame: Self { .init(501, "malformed_frame", "malformed frame") }
    /// A frame type the receiver does not know.
    public static var unknownFrameType: Self { .init(502, "unknown_frame_type", "unknown frame type") }
    /// A frame longer than the receiver's maximum; refused from its length prefix, before the body is read.
    public static var frameTooLarge: Self { .init(503, "frame_too_large", "frame too large") }
    /// A request other than login before a successful login.
    public static var notLoggedIn: Self { .init(504, "not_logged_in", "not logged in") }
    /// Unknown handle or a signature that does not verify: one code, so a failed login says nothing about which.
    public static var loginFailed: Self { .init(505, "login_failed", "login failed") }
    /// Too many failed logins from this address; try again later.
    public static var rateLimited: Self { .init(506, "rate_limited", "rate limited") }
    /// A frame that is valid but not allowed now or from this side (a second login, a relay-only frame).
    public static var unexpectedFrame: Self { .init(507, "unexpected_frame", "unexpected frame") }
    /// Registration with an enrollment code that is unknown, used, expired or for another handle.
    public static var enrollmentInvalid: Self { .init(508, "enrollment_invalid", "enrollment code invalid") }
    /// Registration of a handle, or an identity key, that is registered already.
    public static var handleTaken: Self { .init(509, "handle_taken", "handle taken") }
    /// A request names a handle nobody registered (or who has no signed prekey yet).
    public static var unknownHandle: Self { .init(510, "unknown_handle", "unknown handle") }
    /// An uploaded prekey whose signature is not the account's identity key's.
    public static var prekeyRejected: Self { .init(511, "prekey_rejected", "prekey rejected") }
    /// The connection was idle too long, or did not log in in time; the relay closes it.
    public static var timeout: Self { .init(512, "timeout", "timeout") }
    /// The recipient's queue is full (envelopes or bytes); nothing was stored. Retry later.
    public static var quotaExceeded: Self { .init(513, "quota_exceeded", "quota exceeded") }
    /// An upload chunk that does not start at the offset the relay holds; nothing was written.
    public static var offsetMismatch: Self { .init(514, "offset_mismatch", "upload offset mismatch") }
    /// An upload chunk that would pass the size declared when the upload was opened, or a reopening with another size.
    public static var beyondDeclaredSize: Self { .init(515, "beyond_declared_size", "beyond declared size") }
    /// A commit before every declared byte has arrived.
    public static var uploadIncomplete: Self { .init(516, "upload_incomplete", "upload incomplete") }
    /// A commit whose bytes do not hash to the attachment id; the upload was discarded.
    public static var attachmentHashMismatch: Self { .init(517, "attachment_hash_mismatch", "attachment hash mismatch") }
    /// No such upload or attachment for this account, or none this account may download.
    public static var unknownAttachment: Self { .init(518, "unknown_attachment", "unknown attachment") }
    /// The relay's disk is (nearly) full: new envelopes and uploads are refused; fetch, download and acknowledge go on.
    public static var storageFull: Self { .init(519, "storage_full", "storage full") }
    /// The relay could not read or write its disk for another reason (an I/O error); nothing was changed. Retry later.
    public static var storageFailed: Self { .init(520, "storage_failed", "storage failed") }
    /// The relay's budget for frames being received is spent: a large frame is refused from its length prefix and
    /// the connection closed. Retry later with back-off.
    public static var relayBusy: Self { .init(521, "relay_busy", "relay busy") }
    /// The relay's database cannot be reached or does not accept writes now (a PostgreSQL failover under way);
    /// nothing was changed, and nothing was acknowledged that was not committed. Retry with back-off.
    public static var storeUnavailable: Self { .init(522, "store_unavailable", "store unavailable") }
}
