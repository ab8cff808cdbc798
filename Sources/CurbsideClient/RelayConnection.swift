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
    /// that calls `checkDeadlines` when a request's time is up.
    private let writes: OutgoingFrames
    /// The requests outstanding, matched to their answers on the event loop.
    private let requests: RequestTable
    /// Whether `pushes` ended because its reader fell `maximumUnreadPushes` behind (the connection itself goes on).
    public var pushesFellBehind: Bool { requests.pushesFellBehind }

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
        let (pushes, pushContinuation) = AsyncStream<RelayMessage>.makeStream(
            bufferingPolicy: .bufferingOldest(maximumUnreadPushes)
        )
        // Every frame after the challenge is matched on the event loop (`FrameDispatcher`), not by the connection's
        // task: answers resume their waiters and pushes reach `pushes` from there, a thread hop sooner.
        let requests = RequestTable(pushes: pushContinuation, boundLoginSent: login != nil)
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
                firstFrame: login.map { $0.firstFrame },
                handlers: { [FrameDispatcher(requests)] }
            )
        } catch let error as TLSError {
            throw error
        } catch {
            throw RelayClientError.connectionLost(ConnectionFailure.describe(error))
        }
        // One task per connection owns the channel: a child of the caller's (withConnection), or a task of its own
        // (open), since the connection then outlives this function. It reads the challenge and hands it back to this
        // function as the connection it makes of it (no other hand-over between the two tasks), then waits for the
        // connection to end. Frames go out, and requests are timed out, on the channel's event loop (OutgoingFrames),
        // with no task of their own: each would be woken for every request, two thread hops more each.
        let (start, startContinuation) = AsyncStream<Result<RelayConnection, any Error>>.makeStream()
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
                        requests: requests,
                        pushes: pushes
                    )
                    writes.whenDue { [weak writes, channel = channel.channel] in
                        // A request whose time is up fails, and the connection is closed, so a late answer cannot be
                        // confused with another; the other requests fail as lost.
                        let (expired, next) = requests.expire(now: .now)
                        if let (continuation, seconds) = expired {
                            continuation.resume(throwing: RelayClientError.timedOut(seconds: seconds))
                            requests.finish("no answer within \(seconds) s")
                            channel.close(promise: nil)
                        } else if let next {
                            writes?.check(by: next)
                        }
                    }
                    opened = connection
                    startContinuation.yield(.success(connection))
                    startContinuation.finish()
                    // FrameDispatcher takes every frame from here on; the stream ends with the connection.
                    while try await inboundFrames.next() != nil {}
                    requests.finish("the relay closed the connection")
                }
            } catch {
                startContinuation.yield(.failure(error))
                startContinuation.finish()
                requests.finish("\(error)")
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
        requests: RequestTable,
        pushes: AsyncStream<RelayMessage>
    ) {
        self.handshake = handshake
        self.challenge = challenge
        self.channel = channel
        self.writes = writes
        self.requests = requests
        self.pushes = pushes
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
        try await withCheckedThrowingContinuation { continuation in
            let deadline = ContinuousClock.now + timeout
            guard let id = requests.request(resuming: continuation, by: deadline, seconds: Int(timeout.components.seconds)) else {
                continuation.resume(throwing: RelayClientError.connectionLost(requests.closedReason ?? "closed"))
                return
            }
            writes.append(message.frame(requestID: id), due: deadline)
        }
    }

    /// Sends `message` without waiting: the answer is collected with `result(of:)`. Requests go out in the order
    /// they are started, so a client can keep several upload chunks in flight in order.
    public func start(_ message: RelayMessage) throws -> UInt32 {
        guard let id = requests.start() else { throw RelayClientError.connectionLost(requests.closedReason ?? "closed") }
        writes.append(message.frame(requestID: id))
        return id
    }

    /// The answer to a request sent with `start`.
    public func result(of id: UInt32) async throws -> RelayMessage {
        try await requests.result(of: id)
    }

    /// Sends close_notify and waits (up to 5 s, `OutgoingFrames.closeTimeout`) for the relay to close its side;
    /// outstanding requests fail with `connectionLost`.
    public func close() async {
        requests.finish("closed by the client")
        writes.finish()
        try? await channel.closeFuture.get()
    }

    private func expect(_ answer: RelayMessage, from message: RelayMessage) async throws {
        let reply = try await request(message)
        guard reply == answer else {
            throw RelayClientError.protocolViolation("expected \(answer.frameType), got \(reply.frameType)")
        }
    }

    /// The message in `frame`; one the protocol does not allow is `.protocolViolation`.
    static func decode(_ frame: Frame) throws -> RelayMessage {
        do {
            return try RelayMessage(decoding: frame)
        } catch {
            throw RelayClientError.protocolViolation("\(error)")
        }
    }
}
