import CurbsideTLS
import CurbsideTransport
import CurbsideWire
import Foundation

extension Client {
    /// Runs `body` on a logged-in connection (the current one, or a new one closed afterwards). A new connection's
    /// work runs as a child of this task (`RelayConnection.withConnection`): nothing of it outlives the call.
    func withConnection<T: Sendable>(loggingIn: Bool = true, _ body: (RelayConnection) async throws -> T) async throws -> T {
        if let connection { return try await body(connection) }
        var opened = false
        do {
            return try await RelayConnection.withConnection(host: relay.host, port: relay.port, tls: tls) { connection in
                opened = true
                if loggingIn {
                    do {
                        try await connection.login(as: me.handle, identity: identity)
                    } catch let error as RelayClientError {
                        throw clientError(error)
                    }
                }
                self.connection = connection
                defer { self.connection = nil }
                return try await body(connection)
            }
        } catch let error as RelayClientError where !opened {
            throw clientError(error)
        } catch where !opened {
            throw Self.connectionError(error, relay: relay)
        }
    }

    /// What a failure to connect to `relay` (before any request) means for the user.
    nonisolated static func connectionError(_ error: any Error, relay: RelayEndpoint) -> ClientError {
        if let error = error as? TLSError, error.code == .pinMismatch {
            return ClientError(
                .certificateMismatch,
                "the relay at \(relay) did not present the pinned certificate key",
                hint: "the relay's fingerprint is printed by `curbside relay init`; if the operator replaced the relay's key, "
                    + "confirm the new fingerprint with them before trusting it"
            )
        }
        if let error = error as? RelayClientError, case .connectionLost(let why) = error {
            return ClientError.unreachable(relay, why)
        }
        return ClientError.unreachable(relay, ConnectionFailure.describe(error))
    }

    /// Checks, before a profile is made, that `relay` answers as a Curbside relay with the pinned certificate key:
    /// connects, completes TLS, reads the challenge and closes. Nothing is sent.
    ///
    /// - Throws: `ClientError` `.network` (`unreachable`, `certificateMismatch`), with hints for someone setting up.
    public static func checkRelay(_ relay: RelayEndpoint) async throws {
        let tls = try relay.pinnedTLSContext()
        do {
            try await RelayConnection.withConnection(host: relay.host, port: relay.port, tls: tls, timeout: .seconds(15)) { _ in }
        } catch {
            throw connectionError(error, relay: relay).whileSettingUp()
        }
    }

    nonisolated func clientError(_ error: RelayClientError) -> ClientError {
        switch error {
        case .refused(let relayError) where relayError.code == .rateLimited || relayError.code == .relayBusy || relayError.isStorage:
            // The relay is there but cannot serve now: like an outage, queued work waits.
            ClientError(
                .relayUnavailable,
                "the relay cannot serve now: \(relayError.code.identifier)",
                hint: ClientError.hint(for: relayError),
                relayError: relayError
            )
        case .refused(let relayError) where relayError.code == .loginFailed:
            ClientError(
                .identityRejected,
                "the relay does not accept this profile's identity for \(me.handle)",
                hint: "this profile may be a stale copy, or the handle was registered from another device",
                relayError: relayError
            )
        case .refused(let relayError): ClientError.refused(relayError)
        case .connectionLost(let why): ClientError.unreachable(relay, why)
        case .timedOut(let seconds): ClientError.unreachable(relay, "no answer within \(seconds) s")
        case .protocolViolation(let what): ClientError(.protocolViolation, "the relay broke the protocol: \(what)")
        }
    }

    /// One request; relay errors become `ClientError`s.
    func request(_ connection: RelayConnection, _ message: RelayMessage) async throws -> RelayMessage {
        do {
            return try await connection.request(message)
        } catch let error as RelayClientError {
            throw clientError(error)
        }
    }
}

extension RelayEndpoint {
    /// A TLS client context that accepts only the relay whose public key has this endpoint's fingerprint.
    func pinnedTLSContext() throws -> TLSContext {
        guard let pin = PublicKeyFingerprint(fingerprint) else {
            throw ClientError(.invalidArgument, "the relay fingerprint must be 64 hex digits")
        }
        return try TLSContext(configuration: .client(trust: .pinnedPublicKeys([pin]), applicationProtocols: [RelayTransport.applicationProtocol]))
    }
}

extension ClientError {
    /// The same failure, with the hint for someone creating a profile: nothing is queued yet, the relay's address or
    /// fingerprint may be mistyped.
    func whileSettingUp() -> ClientError {
        switch code {
        case .unreachable, .relayUnavailable:
            ClientError(
                code,
                message,
                hint: "check --relay with the relay's operator and that the relay is running; no profile was created",
                relayError: relayError
            )
        case .certificateMismatch:
            ClientError(
                code,
                message,
                hint: "check --relay-fingerprint with the relay's operator (`curbside relay init` printed it); no profile was created",
                relayError: relayError
            )
        default: self
        }
    }
}
