import CurbsideWire

/// How soon a consult needs an answer, as its sender set it.
///
/// The raw value is the word the CLI prints and `--json` carries.
public enum Urgency: String, Sendable, Hashable, Codable, CaseIterable, CustomStringConvertible {
    case routine
    case urgent
    case emergency

    /// The raw value, so interpolation prints the word and not the case name.
    public var description: String { rawValue }

    /// The urgency a consult carries on the wire.
    public init(_ urgency: Consult.Urgency) {
        switch urgency {
        case .routine: self = .routine
        case .urgent: self = .urgent
        case .emergency: self = .emergency
        }
    }
}
