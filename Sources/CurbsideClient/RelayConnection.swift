import CurbsideTLS
import CurbsideTransport
import CurbsideWire
import NIOCore

/// Why a conversation with the relay failed.
public enum RelayClientError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The relay answered with an error frame: its code and detail (spec/relay.md §Errors).
    case refused(RelayError)
    /// The connection ended (or could not be made) before the answer arrived; what was asked may or may not have
    /// happened, and asking again is safe for every request of the protocol.
    case connectionLost(String)
    /// No answer within the time allowed; the connection is closed.
    case timedOut(seconds: Int)
    /// The relay sent something the protocol does not allow here.
    case protocolViolation(String)

    public var description: String {
        switch self {
        case .refused(let error): "the relay refused: \(error.code.identifier) (\(error.detail))"
        case .connectionLost(let why): "the connection to the relay was lost: \(why)"
        case .timedOut(let seconds): "the relay did not answer within \(seconds) s"
        case .protocolViolation(let what): "the relay broke the protocol: \(what)"
        }
    }

    /// The relay's error code, when it refused.
    public var relayCode: RelayError.Code? {
        if case .refused(let error) = self { error.code } else { nil }
    }
}

/// Who logs in on a new connection with a bound login (spec/relay.md §Bound login): the handle and the identity key
/// that signs the connection's channel binding as soon as the TLS handshake completes, without waiting for the
/// relay's challenge.
public struct BoundLogin: Sendable {
    /// The request id of the bound login, the first request of its connection.
    static let requestID: UInt32 = 1

    public let handle: Handle
    public let identity: SigningKey

    public init(handle: Handle, identity: SigningKey) {
        self.handle = handle
        self.identity = identity
    }

    /// The `bound_login` frame for the connection whose handshake is `handshake`.
    @Sendable func firstFrame(_ handshake: TLSHandshakeCompletedEvent) -> Frame {
        let request = BoundLoginRequest(handle: handle, channelBinding: handshake.channelBinding, signedBy: identity)
        return RelayMessage.boundLogin(request).frame(requestID: Self.requestID)
    }
}

/// One TLS connection to a relay, with the login challenge read: requests are matched to answers by request id, so
/// several may be outstanding at once, and frames the relay pushes arrive on `pushes`.
public actor RelayConnection {
    /// How many pushes `open` lets wait unread by default.
    public static let defaultMaximumUnreadPushes = 256

    /// The TLS handshake's details: the channel binding that logins sign and the relay's key fingerprint.
    public nonisolated let handshake: TLSHandshakeCompletedEvent
    /// The challenge this connection's login or registration must sign.
    public nonisolated let challenge: LoginChallenge
    /// Pushed envelopes, notices and prekey warnings (request id 0), in arrival order.
    ///
    /// Bounded: it holds at most the `maximumUnreadPushes` given to `open`. A push that finds it full ends it (the
    /// pushes already held are still read, then the stream finishes), and so does the end of the connection.
    /// Requests go on either way. Nothing is lost when it ends early: a push is a courtesy (spec/relay.md §Store
    /// and forward), the relay keeps every envelope and notice until they are acknowledged, and `fetch` and
    /// `fetch_notices` return them; a consumer that sees the stream end catches up with them. A connection used
    /// only for requests (a sync) can leave the stream unread, holding no more than the bound.
    public nonisolated let pushes: AsyncStream<RelayMessage>

    private let channel: any Channel
    /// Frames to write, in the order requests were made (pipelined upload chunks depend on it); also the timer
    /// that wakes `checkDeadlines` when a request's time is up.
    private let writes: OutgoingFrames
    /// When each request sent with `request` times out, and after how many seconds.
    private var deadlines: [UInt32: (at: ContinuousClock.Instant, seconds: Int)] = [:]
    private let pushContinuation: AsyncStream<RelayMessage>.Continuation
    private var waiting: [UInt32: CheckedContinuation<RelayMessage, any Error>] = [:]
    /// Requests sent with `start` whose answers nobody awaits yet, and answers that came before they were awaited.
    private var started: Set<UInt32> = []
    private var early: [UInt32: Result<RelayMessage, any Error>] = [:]
    private var nextRequestID: UInt32 = 1
    private var closedReason: String?
    /// Whether `pushes` ended because its reader fell `maximumUnreadPushes` behind (the connection itself goes on).
    public private(set) var pushesFellBehind = false

    /// Connects, completes TLS (pinned or CA-verified as `tls` says), reads the challenge and runs `body` with the
    /// connection, which is closed when `body` returns or throws. With `login`, the connection is logged in with a
    /// bound login before `body` runs (see `BoundLogin`).
    ///
    /// Structured: the connection's work (reading, writing, timing requests out) runs in a child task of the
    /// caller's, which this function awaits, so nothing of the connection outlives it.
    ///
    /// - Parameter maximumUnreadPushes: how many pushes may wait unread on `pushes` before it ends (at least 1).
    /// - Throws: what `open` throws, and what `body` throws.
    public static func withConnection<T: Sendable>(
        host: String,
        port: Int,
        tls: TLSContext,
        timeout: Duration = .seconds(30),
        maximumUnreadPushes: Int = defaultMaximumUnreadPushes,
        loggingIn login: BoundLogin? = nil,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (RelayConnection) async throws -> T
    ) async throws -> T {
        try await withThrowingTaskGroup(of: Void.self, isolation: isolation) { group in
            let connection = try await connect(
                host: host,
                port: port,
                tls: tls,
                timeout: timeout,
                maximumUnreadPushes: maximumUnreadPushes,
                login: login,
                running: { work in group.addTask { await work() } }
            )
            do {
                if login != nil { try await connection.boundLoginAccepted() }
                let value = try await body(connection)
                await connection.close()
                return value
            } catch {
                await connection.close()
                throw error
            }
        }
    }

    /// Connects, completes TLS (pinned or CA-verified as `tls` says) and reads the challenge.
    ///
    /// The connection's work runs in a task of its own until the connection closes; `withConnection` runs it as a
    /// child of the caller's task instead.
    ///
    /// With `login`, the bound login goes out as soon as the handshake completes, and `open` returns once the relay
    /// accepted it.
    ///
    /// - Parameter maximumUnreadPushes: how many pushes may wait unread on `pushes` before it ends (at least 1).
    /// - Throws: `RelayClientError.connectionLost` when the relay cannot be reached or closes first, TLS errors
    ///   from the handshake (a pin that does not match is `TLSError`), `.protocolViolation` when the first frame is
    ///   not a challenge; with `login`, `.refused` with `login_failed` or `rate_limited`, or with
    ///   `unknown_frame_type` from a relay older than the bound login (log in with `login(as:identity:)` on a new
    ///   connection instead).
    public static func open(
        host: String,
        port: Int,
        tls: TLSContext,
        timeout: Duration = .seconds(30),
        maximumUnreadPushes: Int = defaultMaximumUnreadPushes,
        loggingIn login: BoundLogin? = nil
    ) async throws -> RelayConnection {
        let connection = try await connect(
            host: host,
            port: port,
            tls: tls,
            timeout: timeout,
            maximumUnreadPushes: maximumUnreadPushes,
            login: login,
            running: { work in Task { await work() } }
        )
        guard login != nil else { return connection }
        do {
            try await connection.boundLoginAccepted()
        } catch {
            await connection.close()
            throw error
        }
        return connection
    }

    /// Connects and reads the challenge; `running` starts the task that owns the channel.
    private static func connect(
        host: String,
        port: Int,
        tls: TLSContext,
        timeout: Duration,
        maximumUnreadPushes: Int,
        login: BoundLogin?,
        running: (@escaping @Sendable () async -> Void) -> Void
    ) async throws -> RelayConnection {
        precondition(maximumUnreadPushes >= 1, "internal error: a push buffer needs room for one push")
        let (channel, handshake): (NIOAsyncChannel<Frame, Frame>, TLSHandshakeCompletedEvent)
        do {
            (channel, handshake) = try await RelayTransport.connect(
                host: host,
                port: port,
                tls: tls,
                connectTimeout: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000),
                // As the handshake completes, not after the challenge: the bound login needs only the channel binding,
                // so it leaves with the client's Finished and the relay reads it one round trip sooner (spec/relay.md
                // §Bound login). Its answer comes after the challenge, as request 1.
                firstFrame: login.map { $0.firstFrame }
            )
        } catch let error as TLSError {
            throw error
        } catch {
            throw RelayClientError.connectionLost(ConnectionFailure.describe(error))
        }
        // One task per connection owns the channel and reads it: a child of the caller's (withConnection), or a
        // task of its own (open), since the connection then outlives this function. The challenge is handed back to
        // this function as the connection the task makes of it (no other hand-over between the two tasks), every
        // frame after it is dispatched by request id. Frames go out, and requests are timed
        // out, on the channel's event loop (OutgoingFrames), with no task of their own: each would be woken for
        // every request, two thread hops more each.
        let (start, startContinuation) = AsyncStream<Result<RelayConnection, any Error>>.makeStream()
        let (pushes, pushContinuation) = AsyncStream<RelayMessage>.makeStream(
            bufferingPolicy: .bufferingOldest(maximumUnreadPushes)
        )
        let writes = OutgoingFrames(channel: channel.channel)
        running {
            var opened: RelayConnection?
            do {
                try await channel.executeThenClose { inbound, _ in
                    var inboundFrames = inbound.makeAsyncIterator()
                    guard let first = try await inboundFrames.next() else {
                        throw RelayClientError.connectionLost("the relay closed before its challenge")
                    }
                    guard case .challenge(let challenge) = try Self.decode(first) else {
                        throw RelayClientError.protocolViolation("the first frame is type \(first.type), not a challenge")
                    }
                    let connection = RelayConnection(
                        handshake: handshake,
                        challenge: challenge,
                        channel: channel.channel,
                        writes: writes,
                        pushes: pushes,
                        pushContinuation: pushContinuation,
                        boundLoginSent: login != nil
                    )
                    writes.whenDue { [weak connection] in
                        guard let connection else { return }
                        Task { await connection.checkDeadlines() }
                    }
                    opened = connection
                    startContinuation.yield(.success(connection))
                    startContinuation.finish()
                    while let frame = try await inboundFrames.next() {
                        await connection.dispatch(frame)
                    }
                    await connection.finish("the relay closed the connection")
                }
            } catch {
                startContinuation.yield(.failure(error))
                startContinuation.finish()
                await opened?.finish("\(error)")
            }
            pushContinuation.finish()
            writes.finish()
        }
        var iterator = start.makeAsyncIterator()
        guard let started = await iterator.next() else {
            throw RelayClientError.connectionLost("the connection ended before the challenge")
        }
        return try started.get()
    }

    private init(
        handshake: TLSHandshakeCompletedEvent,
        challenge: LoginChallenge,
        channel: any Channel,
        writes: OutgoingFrames,
        pushes: AsyncStream<RelayMessage>,
        pushContinuation: AsyncStream<RelayMessage>.Continuation,
        boundLoginSent: Bool
    ) {
        if boundLoginSent {
            started.insert(BoundLogin.requestID)
            nextRequestID = BoundLogin.requestID + 1
        }
        self.handshake = handshake
        self.challenge = challenge
        self.channel = channel
        self.writes = writes
        self.pushes = pushes
        self.pushContinuation = pushContinuation
    }

    /// Fails the request whose time is up, if any, and asks to be called again at the earliest deadline left.
    private func checkDeadlines() {
        if let next = expireRequests(now: .now) { writes.check(by: next) }
    }

    /// Logs in as `handle`, signing this connection's challenge and channel binding with `identity`.
    ///
    /// - Throws: `RelayClientError.refused` with `login_failed` or `rate_limited` (the relay then closes).
    public func login(as handle: Handle, identity: SigningKey) async throws {
        let login = LoginRequest(handle: handle, challenge: challenge, channelBinding: handshake.channelBinding, signedBy: identity)
        try await expect(.loginAccepted, from: .login(login))
    }

    /// Waits for the answer to the bound login `connect` sent.
    ///
    /// - Throws: `RelayClientError.refused` with `login_failed`, `rate_limited` or `unknown_frame_type` (the relay then
    ///   closes), `.protocolViolation` for any answer other than `login_accepted`.
    private func boundLoginAccepted() async throws {
        let reply = try await result(of: BoundLogin.requestID)
        guard reply == .loginAccepted else {
            throw RelayClientError.protocolViolation("expected loginAccepted, got \(reply.frameType)")
        }
    }

    /// Registers `handle` with `identity` using the operator's enrollment code and is then logged in.
    ///
    /// The code is an `EnrollmentCode`, so what a person typed is normalised (and refused if it cannot be a code)
    /// before it gets here: `EnrollmentCode("7k3m-...")` returns nil for text that is not one.
    public func register(_ handle: Handle, identity: SigningKey, enrollmentCode: EnrollmentCode) async throws {
        let request = RegisterRequest(
            handle: handle,
            enrollmentCode: Array(enrollmentCode.characters.utf8),
            challenge: challenge,
            channelBinding: handshake.channelBinding,
            signedBy: identity
        )
        try await expect(.registered, from: .register(request))
    }

    /// Asks, before registering, whether `register` would accept `handle` with `enrollmentCode`; changes nothing.
    ///
    /// - Throws: `RelayClientError.refused` with `enrollment_invalid`, `handle_taken` or `rate_limited` (the relay
    ///   then closes), or `unknown_frame_type` from a relay older than the check.
    public func checkEnrollment(_ handle: Handle, enrollmentCode: EnrollmentCode) async throws {
        try await expect(.enrollmentUsable, from: .checkEnrollment(EnrollmentCheck(handle: handle, enrollmentCode: enrollmentCode)))
    }

    /// Sends `message` and waits for the frame that answers it.
    ///
    /// - Throws: `RelayClientError.refused` for an error frame (the connection may go on), `.connectionLost`,
    ///   `.timedOut` (the connection is then closed, so a late answer cannot be confused with another).
    public func request(_ message: RelayMessage, timeout: Duration = .seconds(60)) async throws -> RelayMessage {
        if let closedReason { throw RelayClientError.connectionLost(closedReason) }
        let id = nextRequestID
        nextRequestID = nextRequestID == UInt32.max ? 1 : nextRequestID + 1
        return try await withCheckedThrowingContinuation { continuation in
            waiting[id] = continuation
            let deadline = ContinuousClock.now + timeout
            deadlines[id] = (deadline, Int(timeout.components.seconds))
            writes.append(message.frame(requestID: id), due: deadline)
        }
    }

    /// Sends `message` without waiting: the answer is collected with `result(of:)`. Requests go out in the order
    /// they are started, so a client can keep several upload chunks in flight in order.
    public func start(_ message: RelayMessage) throws -> UInt32 {
        if let closedReason { throw RelayClientError.connectionLost(closedReason) }
        let id = nextRequestID
        nextRequestID = nextRequestID == UInt32.max ? 1 : nextRequestID + 1
        started.insert(id)
        writes.append(message.frame(requestID: id))
        return id
    }

    /// The answer to a request sent with `start`.
    public func result(of id: UInt32) async throws -> RelayMessage {
        if let result = early.removeValue(forKey: id) { return try result.get() }
        guard started.remove(id) != nil else { throw RelayClientError.protocolViolation("no request \(id) is outstanding") }
        if let closedReason { throw RelayClientError.connectionLost(closedReason) }
        return try await withCheckedThrowingContinuation { waiting[id] = $0 }
    }

    /// Sends close_notify and waits (up to 5 s, `OutgoingFrames.closeTimeout`) for the relay to close its side;
    /// outstanding requests fail with `connectionLost`.
    public func close() async {
        finish("closed by the client")
        writes.finish()
        try? await channel.closeFuture.get()
    }

    private func expect(_ answer: RelayMessage, from message: RelayMessage) async throws {
        let reply = try await request(message)
        guard reply == answer else {
            throw RelayClientError.protocolViolation("expected \(answer.frameType), got \(reply.frameType)")
        }
    }

    fileprivate func dispatch(_ frame: Frame) {
        let message: RelayMessage
        do {
            message = try Self.decode(frame)
        } catch {
            // A relay that sends what we cannot read: stop trusting the connection.
            finish("undecodable frame of type \(frame.type): \(error)")
            channel.close(promise: nil)
            return
        }
        if let continuation = waiting.removeValue(forKey: frame.requestID) {
            deadlines[frame.requestID] = nil
            if case .error(let code, let detail) = message {
                continuation.resume(throwing: RelayClientError.refused(RelayError(frameCode: code, detail: detail)))
            } else {
                continuation.resume(returning: message)
            }
        } else if started.remove(frame.requestID) != nil {
            if case .error(let code, let detail) = message {
                early[frame.requestID] = .failure(RelayClientError.refused(RelayError(frameCode: code, detail: detail)))
            } else {
                early[frame.requestID] = .success(message)
            }
        } else if frame.requestID == 0, case .error(let code, let detail) = message {
            // The relay is closing the connection for this reason; everyone waiting learns it.
            let error = RelayClientError.refused(RelayError(frameCode: code, detail: detail))
            for continuation in waiting.values { continuation.resume(throwing: error) }
            waiting = [:]
            deadlines = [:]
            for id in started { early[id] = .failure(error) }
            started = []
            closedReason = "\(error)"
        } else if frame.requestID == 0, case .dropped = pushContinuation.yield(message) {
            // The consumer is `maximumUnreadPushes` behind, or not reading: it fetches what it missed.
            pushesFellBehind = true
            pushContinuation.finish()
        }
        // An answer to nothing we asked (a request that timed out) is dropped.
    }

    fileprivate func finish(_ reason: String) {
        if closedReason == nil { closedReason = reason }
        for continuation in waiting.values { continuation.resume(throwing: RelayClientError.connectionLost(reason)) }
        waiting = [:]
        deadlines = [:]
        for id in started { early[id] = .failure(RelayClientError.connectionLost(reason)) }
        started = []
        pushContinuation.finish()
    }

    /// Times out the request whose deadline passed first, if any (the connection is then closed, so a late answer
    /// cannot be confused with another, and the other requests fail as lost); returns the earliest deadline left.
    private func expireRequests(now: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        guard let (id, deadline) = deadlines.min(by: { $0.value.at < $1.value.at }) else { return nil }
        guard deadline.at <= now else { return deadline.at }
        deadlines[id] = nil
        if let continuation = waiting.removeValue(forKey: id) {
            continuation.resume(throwing: RelayClientError.timedOut(seconds: deadline.seconds))
            finish("no answer within \(deadline.seconds) s")
            channel.close(promise: nil)
        }
        return deadlines.min(by: { $0.value.at < $1.value.at })?.value.at
    }

    private static func decode(_ frame: Frame) throws -> RelayMessage {
        do {
            return try RelayMessage(decoding: frame)
        } catch {
            throw RelayClientError.protocolViolation("\(error)")
        }
    }
}
