import CurbsideWire
import NIOConcurrencyHelpers
import NIOCore

/// A connection's outstanding requests and its pushes: which request ids wait for an answer, the answers that came
/// before anyone awaited them, when each request times out, and why the connection ended.
///
/// Frames from the relay are matched here on the channel's event loop, as `FrameDispatcher` reads them: an answer
/// resumes its waiter, or is kept for `result(of:)`, and a push goes to `pushes`, straight from the loop. A task
/// reading the frames and handing each to the connection's actor cost two thread hops per frame, the better part of
/// a push's way from the relay's socket to its reader.
///
/// Everything is behind one lock; continuations are resumed after it is released.
final class RequestTable: Sendable {
    private struct State {
        var waiting: [UInt32: CheckedContinuation<RelayMessage, any Error>] = [:]
        /// Requests sent with `start` whose answers nobody awaits yet, and answers that came before they were awaited.
        var started: Set<UInt32> = []
        var early: [UInt32: Result<RelayMessage, any Error>] = [:]
        /// When each request sent with `request` times out, and after how many seconds.
        var deadlines: [UInt32: (at: ContinuousClock.Instant, seconds: Int)] = [:]
        var nextRequestID: UInt32 = 1
        var closedReason: String?
        var pushesFellBehind = false
    }

    /// What a frame asks for once the lock is released.
    private enum Delivery {
        case resume(CheckedContinuation<RelayMessage, any Error>, Result<RelayMessage, any Error>)
        case push(RelayMessage)
        case fail([CheckedContinuation<RelayMessage, any Error>], any Error)
        case none
    }

    private let state: NIOLockedValueBox<State>
    private let pushContinuation: AsyncStream<RelayMessage>.Continuation

    /// With `boundLoginSent`, request 1 is the bound login the connection sent as its first frame.
    init(pushes: AsyncStream<RelayMessage>.Continuation, boundLoginSent: Bool) {
        var initial = State()
        if boundLoginSent {
            initial.started.insert(BoundLogin.requestID)
            initial.nextRequestID = BoundLogin.requestID + 1
        }
        state = NIOLockedValueBox(initial)
        pushContinuation = pushes
    }

    var closedReason: String? { state.withLockedValue { $0.closedReason } }
    var pushesFellBehind: Bool { state.withLockedValue { $0.pushesFellBehind } }

    /// A new request id for a request sent with `start`; nil once the connection has ended (see `closedReason`).
    func start() -> UInt32? {
        state.withLockedValue { state in
            guard state.closedReason == nil else { return nil }
            let id = Self.take(&state.nextRequestID)
            state.started.insert(id)
            return id
        }
    }

    /// A new request id whose answer resumes `continuation`, or fails it at `deadline`; nil (the continuation
    /// untouched) once the connection has ended.
    func request(
        resuming continuation: CheckedContinuation<RelayMessage, any Error>,
        by deadline: ContinuousClock.Instant,
        seconds: Int
    ) -> UInt32? {
        state.withLockedValue { state in
            guard state.closedReason == nil else { return nil }
            let id = Self.take(&state.nextRequestID)
            state.waiting[id] = continuation
            state.deadlines[id] = (deadline, seconds)
            return id
        }
    }

    /// The answer to request `id` sent with `start`: at once if it came already, or once it comes.
    func result(of id: UInt32) async throws -> RelayMessage {
        try await withCheckedThrowingContinuation { continuation in
            let ready: Result<RelayMessage, any Error>? = state.withLockedValue { state in
                if let early = state.early.removeValue(forKey: id) { return early }
                guard state.started.remove(id) != nil else {
                    return .failure(RelayClientError.protocolViolation("no request \(id) is outstanding"))
                }
                if let reason = state.closedReason { return .failure(RelayClientError.connectionLost(reason)) }
                state.waiting[id] = continuation
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }
    }

    /// On the event loop: matches `frame` to its request, or hands it on as a push. Returns false for a frame that
    /// cannot be decoded; the connection is then ended with that reason and should be closed.
    func dispatch(_ frame: Frame) -> Bool {
        let message: RelayMessage
        do {
            message = try RelayConnection.decode(frame)
        } catch {
            // A relay that sends what we cannot read: stop trusting the connection.
            finish("undecodable frame of type \(frame.type): \(error)")
            return false
        }
        let answer: Result<RelayMessage, any Error> =
            if case .error(let code, let detail) = message {
                .failure(RelayClientError.refused(RelayError(frameCode: code, detail: detail)))
            } else {
                .success(message)
            }
        let delivery: Delivery = state.withLockedValue { state in
            if let continuation = state.waiting.removeValue(forKey: frame.requestID) {
                state.deadlines[frame.requestID] = nil
                return .resume(continuation, answer)
            }
            if state.started.remove(frame.requestID) != nil {
                state.early[frame.requestID] = answer
                return .none
            }
            guard frame.requestID == 0 else { return .none }  // an answer to a request that timed out
            guard case .failure(let error) = answer else { return .push(message) }
            // The relay is closing the connection for this reason; everyone waiting learns it.
            return .fail(Self.end(&state, reason: "\(error)", error: error), error)
        }
        switch delivery {
        case .resume(let continuation, let answer):
            continuation.resume(with: answer)
        case .push(let message):
            // Only the event loop yields, so pushes keep their order.
            if case .dropped = pushContinuation.yield(message) {
                // The consumer is `maximumUnreadPushes` behind, or not reading: it fetches what it missed.
                state.withLockedValue { $0.pushesFellBehind = true }
                pushContinuation.finish()
            }
        case .fail(let continuations, let error):
            for continuation in continuations { continuation.resume(throwing: error) }
        case .none:
            break
        }
        return true
    }

    /// The connection has ended for `reason` (the first reason given is kept): every request outstanding fails with
    /// `connectionLost`, and `pushes` ends.
    func finish(_ reason: String) {
        let error = RelayClientError.connectionLost(reason)
        let failed = state.withLockedValue { Self.end(&$0, reason: reason, error: error) }
        for continuation in failed { continuation.resume(throwing: error) }
        pushContinuation.finish()
    }

    /// Fails the request whose deadline passed first, if any, returning its continuation and how many seconds it
    /// was given (the connection is then to be closed, so a late answer cannot be confused with another, and the
    /// other requests fail as lost), and the earliest deadline left.
    func expire(now: ContinuousClock.Instant) -> (expired: (CheckedContinuation<RelayMessage, any Error>, Int)?, next: ContinuousClock.Instant?) {
        state.withLockedValue { state in
            guard let (id, deadline) = state.deadlines.min(by: { $0.value.at < $1.value.at }) else { return (nil, nil) }
            guard deadline.at <= now else { return (nil, deadline.at) }
            state.deadlines[id] = nil
            let next = state.deadlines.min(by: { $0.value.at < $1.value.at })?.value.at
            guard let continuation = state.waiting.removeValue(forKey: id) else { return (nil, next) }
            return ((continuation, deadline.seconds), next)
        }
    }

    /// Takes the next request id (never 0, which pushes use).
    private static func take(_ next: inout UInt32) -> UInt32 {
        defer { next = next == UInt32.max ? 1 : next + 1 }
        return next
    }

    /// Records the end of the connection: requests started but not awaited get `error` as their answer; returns the
    /// waiters for the caller to fail once the lock is released.
    private static func end(_ state: inout State, reason: String, error: any Error) -> [CheckedContinuation<RelayMessage, any Error>] {
        if state.closedReason == nil { state.closedReason = reason }
        let waiting = Array(state.waiting.values)
        state.waiting = [:]
        state.deadlines = [:]
        for id in state.started { state.early[id] = .failure(error) }
        state.started = []
        return waiting
    }
}

/// Hands every frame after the first (the relay's challenge, which the connection's task reads) to the connection's
/// `RequestTable`, on the event loop; the first goes on to the task.
final class FrameDispatcher: ChannelInboundHandler {
    typealias InboundIn = Frame
    typealias InboundOut = Frame

    private let requests: RequestTable
    private var challengeRead = false

    init(_ requests: RequestTable) {
        self.requests = requests
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard challengeRead else {
            challengeRead = true
            context.fireChannelRead(data)
            return
        }
        if !requests.dispatch(unwrapInboundIn(data)) { context.close(promise: nil) }
    }
}

@available(*, unavailable)
extension FrameDispatcher: Sendable {}
