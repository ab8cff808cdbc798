import CurbsideWire
import Foundation

/// Where a relay listens and the key its TLS certificate must carry.
public struct RelayEndpoint: Sendable, Hashable, Codable, CustomStringConvertible {
    public let host: String
    public let port: Int
    /// SHA-256 of the relay certificate's public key, 64 lower-case hex digits (what `curbside relay init` prints).
    public let fingerprint: String

    public init(host: String, port: Int, fingerprint: String) {
        self.host = host
        self.port = port
        self.fingerprint = fingerprint.lowercased()
    }

    /// Parses HOST:PORT ([v6]:PORT for IPv6) and a fingerprint in any form ``normalizedFingerprint(_:)`` accepts;
    /// nil for port 0, which nothing can connect to.
    public init?(address: String, fingerprint: String) {
        guard let parsed = Address(address), parsed.port != 0, let fingerprint = Self.normalizedFingerprint(fingerprint) else {
            return nil
        }
        self.init(host: parsed.host, port: parsed.port, fingerprint: fingerprint)
    }

    /// A relay fingerprint as 64 lower-case hex digits, from any form Curbside prints or a person copies: bare hex
    /// (`relay init`, `whoami`), `sha256:` and hex (`relay serve`'s log), in either case, grouped with spaces,
    /// colons or dashes. Nil unless exactly 32 bytes of hex remain: a shortened fingerprint pins nothing.
    public static func normalizedFingerprint(_ text: String) -> String? {
        var rest = Substring(text.trimmingCharacters(in: .whitespaces))
        if rest.lowercased().hasPrefix("sha256:") { rest = rest.dropFirst("sha256:".count) }
        let digits = rest.filter { !" :-".contains($0) }.lowercased()
        guard digits.count == 64, digits.allSatisfy(\.isHexDigit) else { return nil }
        return digits
    }

    /// The host and port, without the key.
    public var address: Address { Address(host: host, port: port) }

    public var description: String { address.description }

    /// HOST:PORT, with an IPv6 host in brackets: where a relay listens (`relay.conf`'s `listen`), or the part of an
    /// endpoint a client connects to.
    public struct Address: Sendable, Hashable, CustomStringConvertible {
        public var host: String
        /// 0 to 65535; 0, in an address to listen on, asks for any free port.
        public var port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        /// Parses HOST:PORT ([v6]:PORT for IPv6); nil without a host or with a port outside 0...65535.
        public init?(_ text: String) {
            guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
                (0...65535).contains(port)
            else { return nil }
            var host = String(text[..<colon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            guard !host.isEmpty else { return nil }
            self.init(host: host, port: port)
        }

        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }
}
