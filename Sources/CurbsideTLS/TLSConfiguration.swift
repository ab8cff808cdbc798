import NIOCore

/// What a TLS endpoint presents and trusts. Always TLS 1.3 only; session tickets are off.
public struct TLSConfiguration: Sendable {
    /// How a client decides the server is the relay it meant.
    public enum Trust: Sendable {
        /// The server's certificate public key must have one of these SHA-256 fingerprints; names and CAs are not
        /// consulted (what `curbside relay init` prints and clients pin).
        case pinnedPublicKeys([PublicKeyFingerprint])
        /// The chain must verify against the CA certificates in this PEM file and name `hostName`.
        case certificateAuthorities(pemFile: String, hostName: String)
    }

    public enum Role: Sendable {
        case server(TLSIdentity)
        case client(Trust)
    }

    public var role: Role
    /// ALPN protocols in preference order. A server refuses a client that offers none of them.
    public var applicationProtocols: [String]
    /// The time from connection to handshake completion before the connection is failed.
    public var handshakeTimeout: TimeAmount
    /// How long a closing connection waits for the peer's close_notify before closing anyway.
    public var shutdownTimeout: TimeAmount

    public static func server(
        identity: TLSIdentity,
        applicationProtocols: [String],
        handshakeTimeout: TimeAmount = .seconds(10)
    ) -> TLSConfiguration {
        TLSConfiguration(
            role: .server(identity),
            applicationProtocols: applicationProtocols,
            handshakeTimeout: handshakeTimeout,
            shutdownTimeout: .seconds(5)
        )
    }

    public static func client(
        trust: Trust,
        applicationProtocols: [String],
        handshakeTimeout: TimeAmount = .seconds(10)
    ) -> TLSConfiguration {
        TLSConfiguration(
            role: .client(trust),
            applicationProtocols: applicationProtocols,
            handshakeTimeout: handshakeTimeout,
            shutdownTimeout: .seconds(5)
        )
    }
}
