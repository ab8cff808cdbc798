import Foundation
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
    let clients: ConnectedClients

    var store: any RelayStore { directory.store }

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
            let connectionID = UUID()
            var currentRequest: UInt32 = 0
            do {
                for try await frame in inbound {
                    currentRequest = frame.requestID
                    switch try await handle(frame, state: state, binding: info.channelBinding, peerAddress: peerAddress) {
                    case .reply(let message, let next):
                        try await outbound.write(message.frame(requestID: frame.requestID))
                        if case .awaitingLogin = state, case .loggedIn(let handle) = next {
                            loggedIn()
                            await clients.add(handle, id: connectionID, channel: channel.channel)
                        }
                        state = next
                    case .refuse(let error):
                        // The request failed; the connection carries on.
                        try await outbound.write(RelayMessage.error(error).frame(requestID: frame.requestID))
                    }
                }
            } catch let error as RelayError {
                // The fatal error answers the request that caused it, if a frame did (0 for framing errors).
                try? await outbound.write(RelayMessage.error(error).frame(requestID: currentRequest))
            } catch {
                // TLS or I/O failure: the connection is gone; nothing to answer.
            }
            if case .loggedIn(let handle) = state {
                await clients.remove(handle, id: connectionID)
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
        let decoded: Result<RelayMessage, RelayError>
        do throws(RelayError) {
            decoded = .success(try RelayMessage(decoding: frame))
        } catch {
            decoded = .failure(error)
        }
        let message: RelayMessage
        switch decoded {
        case .success(let value):
            message = value
        case .failure(let error):
            // After login an unknown type (a newer client's operation) is answered and the connection goes on.
            if error.code == .unknownFrameType, case .loggedIn = state { return .refuse(error) }
            throw error
        }
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
                let (bundle, left) = try await directory.fetchBundleCounting(for: owner)
                if left < directory.lowWaterMark {
                    await clients.push(.prekeysLow(oneTimePrekeysHeld: UInt32(clamping: left)), to: owner)
                }
                return .reply(.bundle(bundle), state)
            } catch let error as RelayError {
                return .refuse(error)
            }
        case (.loggedIn(let sender), .send(let request)):
            guard try await store.identityKey(for: request.recipient) != nil else {
                return .refuse(RelayError(.unknownHandle, "\(request.recipient) is not registered"))
            }
            let usage = try await store.queueUsage(for: request.recipient)
            let id = EnvelopeID(of: request.envelope)
            if usage.envelopes >= configuration.maximumQueuedEnvelopesPerAccount
                || usage.bytes + request.envelope.count > configuration.maximumQueuedBytesPerAccount
            {
                // A retry of something already stored is still acknowledged, whatever the quota.
                guard let stored = try await store.storedEnvelope(id, for: request.recipient) else {
                    return .refuse(RelayError(.quotaExceeded, "\(request.recipient)'s queue is full; try again later"))
                }
                return .reply(.stored(StoredReceipt(envelopeID: id.bytes, storedAt: stored.storedAt, expiresAt: stored.expiresAt)), state)
            }
            let now = Timestamp.now()
            let expiresAt = now.adding(seconds: configuration.envelopeLifetimeSeconds)
            let outcome = try await store.enqueue(request.envelope, from: sender, to: request.recipient, now: now, expiresAt: expiresAt)
            switch outcome {
            case .stored(let sequence):
                let delivered = DeliveredEnvelope(
                    sequence: UInt64(sequence),
                    envelopeID: id.bytes,
                    sender: sender,
                    storedAt: now,
                    envelope: request.envelope
                )
                await clients.push(.pushEnvelope(delivered), to: request.recipient)
                return .reply(.stored(StoredReceipt(envelopeID: id.bytes, storedAt: now, expiresAt: expiresAt)), state)
            case .duplicate(_, let storedAt, let originalExpiry):
                return .reply(.stored(StoredReceipt(envelopeID: id.bytes, storedAt: storedAt, expiresAt: originalExpiry)), state)
            }
        case (.loggedIn(let recipient), .fetch(let after, let limit)):
            let queued = try await store.pending(
                for: recipient,
                after: Int64(clamping: after),
                limit: Int(limit),
                maximumBytes: configuration.maximumFrameLength - 64 * 1024
            )
            let delivered = queued.map(\.delivered)
            return .reply(.envelopes(delivered), state)
        case (.loggedIn(let recipient), .acknowledge(let ids)):
            let envelopeIDs = ids.compactMap(EnvelopeID.init(bytes:))
            let notices = try await store.acknowledge(envelopeIDs, by: recipient, now: .now())
            for notice in notices {
                await clients.push(.pushNotice(notice.wire), to: notice.sender)
            }
            return .reply(.acknowledged(count: UInt16(clamping: notices.count)), state)
        case (.loggedIn(let sender), .fetchNotices(let after)):
            let notices = try await store.notices(for: sender, after: Int64(clamping: after), limit: 1000)
            return .reply(.notices(notices.map(\.wire)), state)
        case (.loggedIn(let sender), .acknowledgeNotices(let through)):
            try await store.removeNotices(for: sender, through: Int64(clamping: through))
            return .reply(.noticesAcknowledged, state)
        case (.awaitingLogin, _):
            throw RelayError(.notLoggedIn, "log in first")
        case (.loggedIn, .login), (.loggedIn, .register), (_, .challenge), (_, .loginAccepted), (_, .error),
            (_, .registered), (_, .prekeysPublished), (_, .bundle), (_, .stored), (_, .envelopes), (_, .acknowledged),
            (_, .notices), (_, .noticesAcknowledged), (_, .pushEnvelope), (_, .pushNotice), (_, .prekeysLow):
            throw RelayError(.unexpectedFrame, "frame type \(frame.type) is not expected here")
        }
    }
}

extension QueuedEnvelope {
    var delivered: DeliveredEnvelope {
        DeliveredEnvelope(
            sequence: UInt64(sequence),
            envelopeID: id.bytes,
            sender: sender,
            storedAt: storedAt,
            envelope: body
        )
    }
}

extension SenderNotice {
    var wire: DeliveryNotice {
        DeliveryNotice(
            sequence: UInt64(sequence),
            kind: kind == .deliveredToDevice ? .deliveredToDevice : .expired,
            envelopeID: envelopeID.bytes,
            recipient: recipient,
            at: at
        )
    }
}
