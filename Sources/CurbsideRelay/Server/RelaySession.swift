import Foundation
import CurbsideTLS
import CurbsideWire
import Logging
import NIOCore

/// What the relay does for a client connection after TLS: challenge, login, then requests (spec/relay.md). One value
/// serves every connection of a server; `run` holds one connection's state (its `State`, its logger) for as long as
/// the connection lasts.
///
/// Any protocol error is answered with an error frame naming its code, and the connection is closed; nothing that
/// happens on one connection touches another.
struct RelaySession {
    let directory: KeyDirectory
    let limiter: LoginRateLimiter
    let bundleFetches: BundleFetchLimiter
    let newRecipients: NewRecipientLimiter
    let configuration: RelayConfiguration
    let clients: ConnectedClients
    let attachments: any AttachmentStorage
    let freeSpace = FreeSpaceCache()
    /// One line per connection opened and closed, login, registration, limit hit and store error; never content,
    /// keys, codes or passwords.
    var logger: Logger = .relayDisabled

    var store: any RelayStore { directory.store }

    enum State {
        case awaitingLogin(LoginChallenge)
        case loggedIn(Handle)
    }

    func run(
        channel: NIOAsyncChannel<Frame, Frame>,
        challenge: LoginChallenge,
        handshake: HandshakeDetails,
        peerAddress: String,
        activity: ConnectionActivity? = nil,
        loggedIn: @Sendable (Handle) -> Void = { _ in }
    ) async {
        let connectionID = UUID()
        var logger = self.logger
        logger[metadataKey: "connection"] = "\(connectionID.uuidString.prefix(8).lowercased())"
        logger[metadataKey: "peer"] = "\(peerAddress)"
        let opened = ContinuousClock.now
        logger.info("connection opened")
        // The task does not wait for the handshake: the pipeline writes the challenge when it completes (see
        // ChallengeWriter), and the first frame comes only after it. A handshake that fails or times out ends the
        // inbound stream.
        let ended = try? await channel.executeThenClose { inbound, outbound in
            var reason = "closed"
            var binding: [UInt8]?
            var state = State.awaitingLogin(challenge)
            var currentRequest: UInt32 = 0
            // Several sends may be in flight at once (a client may pipeline them): each is handed to the store and
            // answered where its transaction finishes, once its envelope is durable, in whatever order the commits
            // finish. Any other request waits until they are answered, so it sees what they stored.
            let sends = SendsInFlight()
            // Answers the store's thread could not write (refusals, a channel that could not take them then) go out
            // here, those of sends settled together in one write.
            let sendAnswers = CoalescingFrameWriter(outbound)
            do {
                do {
                    for try await frame in inbound {
                        // The relay is stopping: this request is not started; the connection closes.
                        guard activity?.begin() ?? true else {
                            reason = "relay_stopping"
                            break
                        }
                        currentRequest = frame.requestID
                        if case .loggedIn(let sender) = state, frame.type == RelayMessage.FrameType.send.rawValue,
                            configuration.maximumSendsInFlightPerConnection > 1,
                            case .send(let request)? = try? RelayMessage(decoding: frame)
                        {
                            let size = request.envelope.count
                            if sends.count >= configuration.maximumSendsInFlightPerConnection
                                || (sends.count > 0 && sends.bytes + size > configuration.maximumSendBytesInFlightPerConnection)
                            {
                                await sends.drained()
                            }
                            let requestID = frame.requestID
                            // Admitted here, in the order the sends arrived (the new-recipient limit decides in order).
                            let admitted: Result<Submission, SettledSend>
                            do {
                                admitted = try await self.admit(request, from: sender, state: state, logger: logger)
                            } catch let error as RelayError where error.isStorage {
                                admitted = .failure(SettledSend(outcome: .refuse(error)))
                            }
                            switch admitted {
                            case .success(let submission):
                                sends.begin(bytes: size)
                                submit(
                                    submission,
                                    requestID: requestID,
                                    on: channel.channel,
                                    answers: sendAnswers,
                                    sends: sends,
                                    activity: activity,
                                    logger: logger
                                )
                            case .failure(let settled):
                                // Answered without the store: a refusal, or a retry of what is stored when the disk is low.
                                try await sendAnswers.write(Self.answer(settled.outcome, logger: logger).frame(requestID: requestID))
                                _ = activity?.end()
                            }
                            currentRequest = 0
                            continue
                        }
                        await sends.drained()
                        let outcome: Outcome
                        do {
                            if binding == nil { binding = handshake.completed?.channelBinding }
                            outcome = try await self.handle(
                                frame,
                                state: state,
                                binding: binding ?? [],
                                peerAddress: peerAddress,
                                logger: logger
                            )
                        } catch let error as RelayError where error.isStorage {
                            // The disk, not the client: answered, and the connection goes on (reads and acknowledgements
                            // may still work).
                            outcome = .refuse(error)
                        }
                        if case .refuse(let error) = outcome, error.isStorage {
                            logger.error("store error", metadata: ["error": "\(error.code.identifier)"])
                        }
                        switch outcome {
                        case .loggedIn(let message, let handle, let key):
                            // Before the answer goes out: the frame maximum is raised on the event loop before the client
                            // can send anything after reading it.
                            loggedIn(handle)
                            try await outbound.write(message.frame(requestID: frame.requestID))
                            clients.add(handle, id: connectionID, channel: channel.channel, key: key)
                            state = .loggedIn(handle)
                        case .reply(let message, let next):
                            try await outbound.write(message.frame(requestID: frame.requestID))
                            state = next
                        case .refuse(let error):
                            // The request failed; the connection carries on.
                            try await outbound.write(RelayMessage.error(error).frame(requestID: frame.requestID))
                        }
                        // The relay is stopping: the request is answered; now the connection closes.
                        guard activity?.end() ?? true else {
                            reason = "relay_stopping"
                            break
                        }
                        // A framing error on the next frame (too large, relay_busy) answers no request: request id 0.
                        currentRequest = 0
                    }
                } catch {
                    // The answers of sends in flight are written first, as the connection's other answers are.
                    await sends.drained()
                    throw error
                }
                await sends.drained()
            } catch let error as RelayError {
                // The fatal error answers the request that caused it, if a frame did (0 for framing errors).
                try? await outbound.write(RelayMessage.error(error).frame(requestID: currentRequest))
                reason = error.code.identifier
                if error.code == .relayBusy { logger.notice("rate limit hit", metadata: ["limiter": "frame_budget"]) }
            } catch {
                // TLS or I/O failure: the connection is gone; nothing to answer.
                reason = "transport_error"
            }
            if handshake.completed == nil { reason = "tls_handshake_failed" }
            var handle: Handle?
            if case .loggedIn(let loggedIn) = state {
                clients.remove(loggedIn, id: connectionID)
                handle = loggedIn
            }
            return (handle: handle, reason: reason)
        }
        Self.logClosed(logger, since: opened, handle: ended?.handle, reason: ended?.reason ?? "closed")
    }

    private static func logClosed(_ logger: Logger, since opened: ContinuousClock.Instant, handle: Handle?, reason: String) {
        let (seconds, attoseconds) = (ContinuousClock.now - opened).components
        var metadata: Logger.Metadata = [
            "reason": "\(reason)",
            "duration": "\(String(format: "%.3f", Double(seconds) + Double(attoseconds) / 1e18))s",
        ]
        if let handle { metadata["handle"] = "\(handle)" }
        logger.info("connection closed", metadata: metadata)
    }

    /// Notes the login for `relay accounts`' last seen; a store that cannot record it does not refuse the login.
    private func recordLogin(_ handle: Handle, at now: Timestamp? = nil, logger: Logger) async {
        do {
            try await store.recordLogin(handle, at: now ?? configuration.clock.now())
        } catch {
            logger.debug("last seen not recorded", metadata: ["handle": "\(handle)", "error": "\(Self.category(of: error))"])
        }
    }

    /// What kind of failure refused a login or registration, for the log: the relay error's code, never its detail.
    private static func category(of error: any Error) -> String {
        (error as? RelayError)?.code.identifier ?? "\(type(of: error))"
    }

    /// A login, classic or bound (spec/relay.md §Login): rate-limited per address and handle, `verify` checks the
    /// signature with the key the handle has, and any failure is `login_failed` (or `rate_limited`) and closes.
    private func logIn(
        _ handle: Handle,
        peerAddress: String,
        logger: Logger,
        verify: @Sendable (VerifyingKey) throws(RelayError) -> Void
    ) async throws -> Outcome {
        guard let attempt = await limiter.admit(peerAddress, handle: handle) else {
            logger.notice("rate limit hit", metadata: ["limiter": "login", "handle": "\(handle)"])
            throw RelayError(.rateLimited, "too many failed logins as \(handle) from this address; try again later")
        }
        let key: VerifyingKey
        let lastSeenAt: Timestamp?
        do {
            (key, lastSeenAt) = try await limiter.counting(attempt) {
                guard let found = try await store.loginKey(for: handle) else {
                    throw RelayError(.loginFailed, "login failed")
                }
                try verify(found.key)
                return found
            }
        } catch {
            logger.info("login refused", metadata: ["handle": "\(handle)", "reason": "\(Self.category(of: error))"])
            throw error
        }
        logger.info("login accepted", metadata: ["handle": "\(handle)"])
        // Last seen is kept to the minute (RelayStore.recordLogin): a login within a minute of the recorded one
        // would write nothing, so it skips the write transaction and its hop to the store's writer altogether.
        let now = configuration.clock.now()
        let resolution = AccountSummary.lastSeenResolutionMilliseconds
        if lastSeenAt.map({ $0.signedMilliseconds <= now.signedMilliseconds - resolution }) ?? true {
            await recordLogin(handle, at: now, logger: logger)
        }
        return .loggedIn(.loginAccepted, handle, key: key)
    }

    enum Outcome {
        case reply(RelayMessage, State)
        /// A login or registration succeeded with `key`: the connection is logged in as `handle` from now on.
        case loggedIn(RelayMessage, Handle, key: VerifyingKey)
        /// An error frame for this request; the connection stays open.
        case refuse(RelayError)
    }

    /// One frame in, one reply out; throws a `RelayError` when the connection must close after an error frame.
    private func handle(
        _ frame: Frame,
        state: State,
        binding: [UInt8],
        peerAddress: String,
        logger: Logger
    ) async throws -> Outcome {
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
            return try await logIn(login.handle, peerAddress: peerAddress, logger: logger) { key throws(RelayError) in
                try login.verify(identityKey: key, challenge: challenge, channelBinding: binding)
            }
        case (.awaitingLogin, .boundLogin(let login)):
            guard !configuration._testOnly_refusesBoundLogin else {
                throw RelayError(.unknownFrameType, "frame type 0x\(String(frame.type, radix: 16)) is unknown")
            }
            return try await logIn(login.handle, peerAddress: peerAddress, logger: logger) { key throws(RelayError) in
                try login.verify(identityKey: key, channelBinding: binding)
            }
        case (.awaitingLogin(let challenge), .register(let request)):
            guard let attempt = await limiter.admit(peerAddress, handle: request.handle) else {
                logger.notice("rate limit hit", metadata: ["limiter": "login", "handle": "\(request.handle)"])
                throw RelayError(.rateLimited, "too many failed attempts as \(request.handle) from this address; try again later")
            }
            do {
                try await limiter.counting(attempt) {
                    try request.verify(challenge: challenge, channelBinding: binding)
                    try await directory.register(request, now: configuration.clock.now())
                }
            } catch {
                logger.info("registration refused", metadata: ["handle": "\(request.handle)", "reason": "\(Self.category(of: error))"])
                throw error
            }
            logger.info("registration accepted", metadata: ["handle": "\(request.handle)"])
            await recordLogin(request.handle, logger: logger)
            return .loggedIn(.registered, request.handle, key: request.identityKey)
        case (.awaitingLogin, .checkEnrollment(let check)):
            // Answered like the registration it announces, and rate-limited like one: a code that would fail counts
            // as a failed attempt for the handle; a usable one changes nothing and counts for nothing.
            guard let attempt = await limiter.admit(peerAddress, handle: check.handle) else {
                logger.notice("rate limit hit", metadata: ["limiter": "login", "handle": "\(check.handle)"])
                throw RelayError(.rateLimited, "too many failed attempts as \(check.handle) from this address; try again later")
            }
            do {
                try await limiter.counting(attempt) {
                    try await directory.checkEnrollment(check, now: configuration.clock.now())
                }
            } catch {
                logger.info("enrollment check refused", metadata: ["handle": "\(check.handle)", "reason": "\(Self.category(of: error))"])
                throw error
            }
            return .reply(.enrollmentUsable, state)
        case (.loggedIn(let handle), .publishPrekeys(let upload)):
            do {
                try await directory.publish(for: handle, signedPrekey: upload.signedPrekey, oneTimePrekeys: upload.oneTimePrekeys)
            } catch let error as RelayError {
                return .refuse(error)
            }
            let held = try await directory.store.oneTimePrekeyCount(for: handle)
            return .reply(.prekeysPublished(oneTimePrekeysHeld: UInt32(clamping: held)), state)
        case (.loggedIn(let requester), .fetchBundle(let owner)):
            do {
                // Past its share of the owner's one-time prekeys, a requester gets the bundle without one. Only real
                // owners get a bucket: fetches for made-up handles must not grow the limiter's table.
                guard try await directory.store.identityKey(for: owner) != nil else {
                    throw RelayError(.unknownHandle, "\(owner) is not registered here")
                }
                let oneTime = await bundleFetches.take(requester: requester, owner: owner)
                if !oneTime {
                    logger.notice("rate limit hit", metadata: ["limiter": "one_time_prekeys", "owner": "\(owner)"])
                }
                let (bundle, left) = try await directory.fetchBundleCounting(for: owner, withOneTimePrekey: oneTime)
                if oneTime, left < directory.lowWaterMark {
                    clients.push(.prekeysLow(oneTimePrekeysHeld: UInt32(clamping: left)), to: owner)
                }
                return .reply(.bundle(bundle), state)
            } catch let error as RelayError {
                return .refuse(error)
            }
        case (.loggedIn(let sender), .send(let request)):
            return try await send(request, from: sender, state: state, logger: logger)
        case (.loggedIn(let recipient), .fetch(let after, let limit)):
            // The answer must fit the frame maximum every client accepts (and this relay's own, if lower): the
            // frame's type and request id, the list's 2-byte count, and each envelope whole.
            let frameLimit = min(configuration.maximumFrameLength, Frame.protocolMaximumLength)
            let queued = try await store.pending(
                for: recipient,
                after: Int64(clamping: after),
                limit: Int(limit),
                maximumBytes: frameLimit - Frame.headerByteCount - 2
            )
            let delivered = queued.map(\.delivered)
            return .reply(.envelopes(delivered), state)
        case (.loggedIn(let recipient), .acknowledge(let ids)):
            let envelopeIDs = ids.compactMap(EnvelopeID.init(bytes:))
            let removal = try await store.acknowledge(envelopeIDs, by: recipient, now: configuration.clock.now())
            await settle(removal)
            return .reply(.acknowledged(count: UInt16(clamping: removal.notices.count)), state)
        case (.loggedIn(let recipient), .reject(let rejections)):
            let named = rejections.compactMap { rejection in EnvelopeID(bytes: rejection.envelopeID).map { (id: $0, reason: rejection.reason) } }
            let removal = try await store.reject(named, by: recipient, now: configuration.clock.now())
            await settle(removal)
            return .reply(.acknowledged(count: UInt16(clamping: removal.notices.count)), state)
        case (.loggedIn(let sender), .fetchNotices(let after)):
            let notices = try await store.notices(for: sender, after: Int64(clamping: after), limit: 1000)
            return .reply(.notices(notices.map(\.wire)), state)
        case (.loggedIn(let sender), .acknowledgeNotices(let through)):
            try await store.removeNotices(for: sender, through: Int64(clamping: through))
            return .reply(.noticesAcknowledged, state)
        case (.loggedIn(let owner), .openUpload(let request)):
            return try await refusing(state) { try await openUpload(request, owner: owner) }
        case (.loggedIn(let owner), .uploadChunk(let chunk)):
            return try await refusing(state) { try await writeChunk(chunk, owner: owner) }
        case (.loggedIn(let owner), .commitUpload(let id)):
            return try await refusing(state) { try await commitUpload(id, owner: owner) }
        case (.loggedIn(let owner), .abandonUpload(let id)):
            return try await refusing(state) { try await abandonUpload(id, owner: owner) }
        case (.loggedIn(let owner), .commitUploadAs(let request)):
            guard !configuration._testOnly_refusesCommitUploadAs else {
                return .refuse(RelayError(.unknownFrameType, "frame type 0x\(String(frame.type, radix: 16)) is unknown"))
            }
            return try await refusing(state) { try await commitUpload(request, owner: owner) }
        case (.loggedIn(let account), .download(let request)):
            return try await refusing(state) { try await download(request, by: account) }
        case (.awaitingLogin, _):
            throw RelayError(.notLoggedIn, "log in first")
        case (.loggedIn, .login), (.loggedIn, .boundLogin), (.loggedIn, .register), (.loggedIn, .checkEnrollment), (_, .enrollmentUsable), (_, .uploadAbandoned), (_, .challenge), (_, .loginAccepted), (_, .error),
            (_, .registered), (_, .prekeysPublished), (_, .bundle), (_, .stored), (_, .envelopes), (_, .acknowledged),
            (_, .notices), (_, .noticesAcknowledged), (_, .pushEnvelope), (_, .pushNotice), (_, .prekeysLow),
            (_, .uploadStatus), (_, .attachmentData):
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
        let (wireKind, reason): (DeliveryNotice.Kind, Receipt.FailureReason?) =
            switch kind {
            case .deliveredToDevice: (.deliveredToDevice, nil)
            case .expired: (.expired, nil)
            case .rejected(let reason): (.rejected, reason)
            }
        return DeliveryNotice(
            sequence: UInt64(sequence),
            kind: wireKind,
            envelopeID: envelopeID.bytes,
            recipient: recipient,
            at: at,
            reason: reason
        )
    }
}
