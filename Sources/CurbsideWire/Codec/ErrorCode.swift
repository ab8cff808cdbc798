/// A stable, numbered error code of one domain (`WireError`, `BundleError`, `EnvelopeError`, `CryptoError`, …).
///
/// The numbers and identifiers of the protocol's domains are listed in spec/errors.md and used in spec/vectors; a
/// domain that never crosses the wire (the client library's `ClientError`) lists its own. They never change meaning.
/// Equality and hashing follow the number. Domains add codes as static members, so adding one breaks no caller.
public struct ErrorCode<Domain: ErrorDomain>: Hashable, Sendable, CustomStringConvertible {
    /// The stable number.
    public let rawValue: UInt16
    /// The identifier used in spec/vectors, such as "truncated".
    public let identifier: String
    /// A lowercase phrase for messages, such as "trailing bytes".
    public let name: String

    /// A code of the domain; only a domain's own static members call this, so each number has one meaning.
    package init(_ rawValue: UInt16, _ identifier: String, _ name: String) {
        self.rawValue = rawValue
        self.identifier = identifier
        self.name = name
    }

    /// The code of this domain with the vector identifier `identifier`, if there is one.
    public init?(identifier: String) {
        guard let code = Domain.allCodes.first(where: { $0.identifier == identifier }) else { return nil }
        self = code
    }

    /// The code of this domain with the number `rawValue`, if there is one.
    public init?(rawValue: UInt16) {
        guard let code = Domain.allCodes.first(where: { $0.rawValue == rawValue }) else { return nil }
        self = code
    }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.rawValue == rhs.rawValue }
    public func hash(into hasher: inout Hasher) { hasher.combine(rawValue) }
    public var description: String { identifier }
}

/// An error type whose codes are listed in spec/errors.md.
public protocol ErrorDomain: Error, Sendable {
    /// Every code of the domain, in the order of the spec's table.
    static var allCodes: [ErrorCode<Self>] { get }
    var code: ErrorCode<Self> { get }
}
