/// Why bytes were rejected by the decoder, or a value by its initialiser. Codes are listed in spec/errors.md.
///
/// Equality compares the code, field and offset, so tests can pin all three. The description never contains
/// the bytes themselves: a rejected field might hold a secret.
public struct WireError: ErrorDomain, Hashable, CustomStringConvertible {
    public typealias Code = ErrorCode<WireError>

    public let code: Code
    /// The path of the field, such as "envelope.header.version".
    public let field: String
    /// Where decoding stopped, counted from the start of the input; nil when a value was built, not decoded.
    public let offset: Int?
    /// Public detail, such as "length 70000 exceeds 4096".
    public let detail: String?

    public init(_ code: Code, field: String, offset: Int?, detail: String? = nil) {
        self.code = code
        self.field = field
        self.offset = offset
        self.detail = detail
    }

    public var description: String {
        var text = "\(field): \(detail ?? code.name)"
        if let offset { text += " at byte \(offset)" }
        return text
    }

    public static let allCodes: [Code] = [
        .truncated, .trailingBytes, .lengthOutOfBounds, .unsupportedVersion, .unknownEnumValue, .invalidText,
        .invalidHandle, .invalidPublicKey, .invalidValue,
    ]
}

extension ErrorCode where Domain == WireError {
    /// The input ended inside a field.
    public static var truncated: Self { .init(101, "truncated", "truncated") }
    /// Bytes remain after a complete top-level value, or after a nested structure inside its length.
    public static var trailingBytes: Self { .init(102, "trailing_bytes", "trailing bytes") }
    /// A length or count outside the field's declared bounds.
    public static var lengthOutOfBounds: Self { .init(103, "length_out_of_bounds", "length out of bounds") }
    /// A version this implementation does not speak.
    public static var unsupportedVersion: Self { .init(104, "unsupported_version", "unsupported version") }
    /// An enumerated value outside its declared set, including presence flags other than 0 and 1.
    public static var unknownEnumValue: Self { .init(105, "unknown_enum", "unknown value") }
    /// A text field that is not well-formed UTF-8, or holds a control character.
    public static var invalidText: Self { .init(106, "invalid_text", "invalid text") }
    /// A handle outside the handle grammar (spec/encoding.md §Handles).
    public static var invalidHandle: Self { .init(107, "invalid_handle", "invalid handle") }
    /// An Ed25519 key that is not a canonical point of the prime-order subgroup.
    public static var invalidPublicKey: Self { .init(108, "invalid_public_key", "invalid public key") }
    /// A value that decodes but breaks a rule of its structure (a variant's fields disagree, a size is zero).
    public static var invalidValue: Self { .init(109, "invalid_value", "invalid value") }
}
