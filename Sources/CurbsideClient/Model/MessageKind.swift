import CurbsideWire

/// What a stored message is: a consult, a reply in a consult's thread, or a receipt about another message.
///
/// The raw value is the word the CLI prints and `--json` carries; the profile database stores the content type's
/// number from the envelope (spec/envelope.md, 1 consult, 2 reply, 3 receipt).
public enum MessageKind: String, Sendable, Hashable, Codable, CaseIterable, CustomStringConvertible {
    case consult
    case reply
    case receipt

    /// The raw value, so interpolation prints the word and not the case name.
    public var description: String { rawValue }

    /// The kind of a message with this content.
    public init(_ kind: Content.Kind) {
        switch kind {
        case .consult: self = .consult
        case .reply: self = .reply
        case .receipt: self = .receipt
        }
    }

    /// The content type number this kind is stored as.
    var contentKind: Content.Kind {
        switch self {
        case .consult: .consult
        case .reply: .reply
        case .receipt: .receipt
        }
    }
}
