/// Why a prekey bundle was refused (spec/keys.md §Verifying a bundle). Codes are listed in spec/errors.md.
public struct BundleError: ErrorDomain, Hashable, CustomStringConvertible {
    public typealias Code = ErrorCode<BundleError>

    public let code: Code
    /// Public detail: prekey ids, times, fingerprints.
    public let detail: String

    public init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    public var description: String { "prekey bundle: \(detail)" }

    public static let allCodes: [Code] = [.badSignature, .prekeyExpired, .identityMismatch]
}

extension ErrorCode where Domain == BundleError {
    /// A prekey's signature does not verify under the bundle's identity key: the prekey is not that identity's.
    public static var badSignature: Self { .init(201, "bad_prekey_signature", "bad prekey signature") }
    /// The signed prekey's expiry time has passed.
    public static var prekeyExpired: Self { .init(202, "prekey_expired", "prekey expired") }
    /// The bundle's identity key or handle is not the one expected (the pinned contact).
    public static var identityMismatch: Self { .init(203, "identity_mismatch", "identity mismatch") }
}
