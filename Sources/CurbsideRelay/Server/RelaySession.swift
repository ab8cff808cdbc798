import CurbsideTLS
import CurbsideWire
import NIOCore

/// One client connection after TLS: challenge, login, then requests (spec/relay.md).
///
/// Any protocol error is answered with an error frame naming its code, and the connection is closed; nothing that
/// happens here touches another connection.
struct RelaySession {
    let directory: KeyDirectory
    let limiter: LoginRateLimiter
    let configuration: RelayConfiguration

    enum State {
        case awaitingLogin(LoginChallenge)
        case loggedIn(Handle)
    }

    func run(
        channel: NIOAsyncChannel<Frame, Frame>,
        handshake: EventLoopFuture<TLSHandshakeCompletedEvent>,
        peerAddress: String,
        loggedIn: @Sendable () -> Void = {}
    ) async {
        guard let info = try? await handshake.get() else {
            // The handshake failed or timed out: close, finishing the async channel as NIO requires.
            try? await channel.executeThenClose { _, _ in }
            return
        }
        try? await channel.executeThenClose { inbound, outbound in
            let challenge = LoginChallenge.random()
            try await outbound.write(RelayMessage.challenge(challenge).frame(requestID: 0))
            var state = State.awaitingLogin(challenge)
            do {
                for try await frame in inbound {
                    switch try await handle(frame, state: state, binding: info.channelBinding, peerAddress: peerAddress) {
                    case .reply(let message, let next):
                        try await outbound.write(message.frame(requestID: frame.requestID))
                        if case .awaitingLogin = state, case .loggedIn = next { loggedIn() }
                        state = next
                    case .refuse(let error):
                        // The request failed; the connection carries on.
                        try await outbound.write(RelayMessage.error(error).frame(requestID: frame.requestID))
                    }
                }
            } catch let error as RelayError {
                try? await outbound.write(RelayMessage.error(error).frame(requestID: 0))
            } catch {
                // TLS or I/O failure: the connection is gone; nothing to answer.
            }
        }
    }

    enum Outcome {
        case reply(RelayMessage, State)
        /// An error frame for this request; the connection stays open.
        case refuse(RelayError)
    }

    /// One frame in, one reply out; throws a `RelayError` when the connection must close after an error frame.
    private func handle(_ frame: Frame, state: State, binding: [UInt8], peerAddress: String) async throws -> Outcome {
        let message = try RelayMessage(decoding: frame)
        switch (state, message) {
        case (.awaitingLogin(let challenge), .login(let login)):
            guard await limiter.allows(peerAddress) else {
                throw RelayError(.rateLimited, "too many failed logins from this address; try again later")
            }
            guard let key = try await directory.store.identityKey(for: login.handle) else {
                await limiter.recordFailure(peerAddress)
                throw RelayError(.loginFailed, "login failed")
            }
            do {
                try login.verify(identityKey: key, challenge: challenge, channelBinding: binding)
            } catch {
                await limiter.recordFailure(peerAddress)
                throw error
            }
            return .reply(.loginAccepted, .loggedIn(login.handle))
        case (.awaitingLogin(let challenge), .register(let request)):
            guard await limiter.allows(peerAddress) else {
                throw RelayError(.rateLimited, "too many failed attempts from this address; try again later")
            }
            do {
                try request.verify(challenge: challenge, channelBinding: binding)
                try await directory.register(request, now: .now())
            } catch {
                await limiter.recordFailure(peerAddress)
                throw error
            }
            return .reply(.registered, .loggedIn(request.handle))
        case (.loggedIn(let handle), .publishPrekeys(let upload)):
            do {
                try await directory.publish(for: handle, signedPrekey: upload.signedPrekey, oneTimePrekeys: upload.oneTimePrekeys)
            } catch let error as RelayError {
                return .refuse(error)
            }
            let held = try await directory.store.oneTimePrekeyCount(for: handle)
            return .reply(.prekeysPublished(oneTimePrekeysHeld: UInt32(clamping: held)), state)
        case (.loggedIn, .fetchBundle(let owner)):
            do {
                let (bundle, _) = try await directory.fetchBundle(for: owner)
                return .reply(.bundle(bundle), state)
            } catch let error as RelayError {
                return .refuse(error)
            }
        case (.awaitingLogin, _):
            throw RelayError(.notLoggedIn, "log in first")
        case (.loggedIn, .login), (.loggedIn, .register), (_, .challenge), (_, .loginAccepted), (_, .error),
            (_, .registered), (_, .prekeysPublished), (_, .bundle):
            throw RelayError(.unexpectedFrame, "frame type \(frame.type) is not expected here")
        }
    }
}
