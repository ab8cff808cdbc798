import CurbsideTLS
import CurbsideTransport
import CurbsideWire
import Foundation

extension Client {
    /// Runs `body` on a logged-in connection (the current one, or a new one closed afterwards). A new connection's
    /// work runs as a child of this task (`RelayConnection.withConnection`): nothing of it outlives the call. With
    /// `shared` false it is always a new connection, and no other work of this client uses it.
    ///
    /// A new connection logs in with the bound login (spec/relay.md §Bound login), one round trip sooner than the
    /// challenge login; a relay that refuses it as an unknown frame is remembered in the profile, and logged in with
    /// the challenge on a new connection, now and until `boundLoginRetryInterval` has passed.
    func withConnection<T: Sendable>(loggingIn: Bool = true, shared: Bool = true, _ body: (RelayConnection) async throws -> T) async throws -> T {
        if shared, let connection { return try await body(connection) }
        let bound = loggingIn ? await relayTakesBoundLogin() : false
        do {
            return try await withNewConnection(loggingIn: loggingIn, bound: bound, shared: shared, body)
        } catch is BoundLoginUnknown {
            logger.debug("the relay refused the bound login; logging in with its challenge")
            await noteBoundLoginRefused()
            return try await withNewConnection(loggingIn: true, bound: false, shared: shared, body)
        }
    }

    /// The relay answered the bound login itself (not a later request) with `unknown_frame_type`: it is older than
    /// the bound login, and `body` has not run.
    private struct BoundLoginUnknown: Error {}

    private func withNewConnection<T: Sendable>(
        loggingIn: Bool,
        bound: Bool,
        shared: Bool,
        _ body: (RelayConnection) async throws -> T
    ) async throws -> T {
        var opened = false
        let login = bound ? BoundLogin(handle: me.handle, identity: identity) : nil
        do {
            return try await RelayConnection.withConnection(
                host: relay.host,
                port: relay.port,
                tls: tls,
                loggingIn: login
            ) { connection in
                opened = true
                if loggingIn, !bound {
                    do {
                        try await connection.login(as: me.handle, identity: identity)
                    } catch let error as RelayClientError {
                        throw clientError(error)
                    }
                }
                guard shared else { return try await body(connection) }
                self.connection = connection
                defer { self.connection = nil }
                return try await body(connection)
            }
        } catch let error as RelayClientError where !opened {
            if bound, error.relayCode == .unknownFrameType { throw BoundLoginUnknown() }
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

    /// Checks, before a profile is made, everything `create` needs that can be checked without the passphrase: that
    /// `relay` answers as a Curbside relay with the pinned certificate key, and that it would register `handle` with
    /// `enrollmentCode` (spec/relay.md §Checking an enrollment code). Nothing changes on the relay.
    ///
    /// - Throws: `ClientError` `.network` (`unreachable`, `certificateMismatch`) or `.protocol` (`refused`, with the
    ///   relay's `enrollment_invalid` or `handle_taken`), with hints for someone setting up. A relay too old to
    ///   answer the question is taken at its word later, by `create`.
    public static func checkEnrollment(relay: RelayEndpoint, handle: Handle, enrollmentCode: EnrollmentCode) async throws {
        let tls = try relay.pinnedTLSContext()
        var connected = false
        do {
            try await RelayConnection.withConnection(host: relay.host, port: relay.port, tls: tls, timeout: .seconds(15)) { connection in
                connected = true
                try await connection.checkEnrollment(handle, enrollmentCode: enrollmentCode)
            }
        } catch let error as RelayClientError where connected {
            if case .refused(let refusal) = error, refusal.code == .unknownFrameType { return }
            throw refusedWhileSettingUp(error, relay: relay)
        } catch {
            throw connectionError(error, relay: relay).whileSettingUp()
        }
    }

    /// A relay's answer to a registration or its check, for someone setting up.
    nonisolated static func refusedWhileSettingUp(_ error: RelayClientError, relay: RelayEndpoint) -> ClientError {
        switch error {
        case .refused(let refusal) where refusal.code == .rateLimited:
            ClientError(
                .relayUnavailable,
                "the relay refuses more attempts for this handle from this address for now",
                hint: "wait a few minutes, then check the code and the handle before trying again",
                relayError: refusal
            )
        case .refused(let refusal) where refusal.code == .enrollmentInvalid:
            ClientError(
                .refused,
                "the relay does not accept this enrollment code for this handle (unknown, used, expired, or made for another handle)",
                hint: ClientError.enrollmentHint,
                relayError: refusal
            )
        case .refused(let refusal) where refusal.code == .handleTaken:
            ClientError(
                .refused,
                "the handle is registered on this relay already",
                hint: "if it is yours on a lost or replaced device, ask the operator for `curbside relay enroll --replace`; "
                    + "otherwise choose another handle",
                relayError: refusal
            )
        case .refused(let refusal): ClientError.refused(refusal)
        case .connectionLost(let why): ClientError.unreachable(relay, why).whileSettingUp()
        case .timedOut(let seconds): ClientError.unreachable(relay, "no answer within \(seconds) s").whileSettingUp()
        case .protocolViolation(let what): ClientError(.protocolViolation, "the relay broke the protocol: \(what)")
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
