import CurbsideWire

/// Why a client operation failed, with what the user can do about it.
///
/// Every error belongs to a `Category`, which the CLI turns into its exit status, so scripts can tell a typo from
/// a key change from a dead network.
public struct ClientError: Error, Sendable, Hashable, CustomStringConvertible {
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

    public let category: Category
    /// What happened, in one sentence without content or keys.
    public let message: String
    /// What to do about it.
    public let hint: String?

    public init(_ category: Category, _ message: String, hint: String? = nil) {
        self.category = category
        self.message = message
        self.hint = hint
    }

    public var description: String { message }

    static func wrongPassphrase() -> ClientError {
        ClientError(.profile, "the passphrase does not open this profile", hint: "check CURBSIDE_PASSPHRASE or type it again")
    }

    static func unreachable(_ endpoint: RelayEndpoint, _ why: String) -> ClientError {
        ClientError(
            .network,
            "cannot reach the relay at \(endpoint): \(why)",
            hint: "anything you sent is kept in the outbox; `curbside sync` sends it when the relay can be reached"
        )
    }

    static func keyChanged(_ handle: Handle) -> ClientError {
        ClientError(
            .trust,
            "\(handle)'s identity key has changed since you pinned it; nothing was sent",
            hint: "compare the new safety number with \(handle) in person or by phone (`curbside contacts show \(handle)`), "
                + "then `curbside contacts verify \(handle) NUMBER`"
        )
    }

    static func refused(_ error: RelayError) -> ClientError {
        let hint: String? =
            switch error.code {
            case .unknownHandle: "check the handle; the colleague must have run `curbside init` on this relay"
            case .quotaExceeded: "the recipient's queue on the relay is full; try again later"
            case .storageFull, .storageFailed: "the relay is short of disk space; try again later"
            case .rateLimited: "the relay limits how fast this is done; wait a minute and try again"
            case .relayBusy: "the relay is receiving a lot at once; `curbside sync` tries again"
            case .storeUnavailable: "the relay's database is changing over; `curbside sync` tries again in a moment"
            case .loginFailed: "this profile's identity is not the one the relay has for its handle"
            case .enrollmentInvalid: "ask the relay's operator for a new enrollment code"
            case .handleTaken: "the handle is registered already; choose another or ask the operator"
            default: nil
            }
        return ClientError(.protocol, "the relay refused: \(error.code.identifier) (\(error.detail))", hint: hint)
    }
}
