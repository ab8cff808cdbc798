/// Which way a message went: received by this profile, or sent from it.
///
/// The raw value is the word the CLI prints and `--json` carries, and the value the profile database stores.
public enum Direction: String, Sendable, Hashable, Codable, CaseIterable, CustomStringConvertible {
    /// Received from a peer.
    case incoming = "in"
    /// Sent by this profile.
    case outgoing = "out"

    /// The raw value, so interpolation prints the word and not the case name.
    public var description: String { rawValue }
}
