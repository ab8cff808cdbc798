import CurbsideTLS
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
        } catch let error as TLSError where !opened && error.code == .pinMismatch {
            throw ClientError(
                .certificateMismatch,
                "the relay at \(relay) did not present the pinned certificate key",
                hint: "the relay's fingerprint is printed by `curbside relay init`; if the operator replaced the relay's key, "
                    + "confirm the new fingerprint with them before trusting it"
            )
        } catch where !opened {
            throw ClientError.unreachable(relay, "\(error)")
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
