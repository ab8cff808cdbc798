import CurbsideWire
import NIOCore

/// Closes a connection that is idle too long, or that has not logged in in time, after an error frame `timeout`.
///
/// Sits after the frame codec, so the error frame it writes is encoded and encrypted like any other. Reads reset the
/// idle timer; `loggedIn()` (called on the event loop when the login succeeds) cancels the login timer.
final class TimeoutHandler: ChannelDuplexHandler {
    typealias InboundIn = Frame
    typealias InboundOut = Frame
    typealias OutboundIn = Frame
    typealias OutboundOut = Frame

    private let idleTimeout: TimeAmount
    private let loginTimeout: TimeAmount
    private var idleTimer: Scheduled<Void>?
    private var loginTimer: Scheduled<Void>?
    private var context: ChannelHandlerContext?

    init(idleTimeout: TimeAmount, loginTimeout: TimeAmount) {
        self.idleTimeout = idleTimeout
        self.loginTimeout = loginTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        loginTimer = context.eventLoop.assumeIsolated().scheduleTask(in: loginTimeout) {
            self.expire(context: context, "no login within \(self.loginTimeout)")
        }
        armIdleTimer(context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        loginTimer?.cancel()
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        armIdleTimer(context: context)
        context.fireChannelRead(data)
    }

    /// The session logged in: the login timer no longer applies.
    func loggedIn() {
        loginTimer?.cancel()
        loginTimer = nil
    }

    private func armIdleTimer(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        idleTimer = context.eventLoop.assumeIsolated().scheduleTask(in: idleTimeout) {
            self.expire(context: context, "idle for \(self.idleTimeout)")
        }
    }

    private func expire(context: ChannelHandlerContext, _ reason: String) {
        idleTimer?.cancel()
        loginTimer?.cancel()
        let frame = RelayMessage.error(RelayError(.timeout, reason)).frame(requestID: 0)
        let channel = context.channel
        // A client that stopped reading never lets the frame out: close after a moment regardless.
        let deadline = context.eventLoop.scheduleTask(in: .seconds(5)) { channel.close(promise: nil) }
        context.writeAndFlush(wrapOutboundOut(frame)).assumeIsolated().whenComplete { _ in
            deadline.cancel()
            channel.close(promise: nil)
        }
    }
}

@available(*, unavailable)
extension TimeoutHandler: Sendable {}

