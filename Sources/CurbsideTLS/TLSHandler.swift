import NIOCore
import NIOTLS

/// Fired once the handshake completes, after NIOTLS's `TLSUserEvent.handshakeCompleted`, with what the relay's
/// login needs: the channel binding and the peer's key fingerprint.
public struct TLSHandshakeCompletedEvent: Sendable, Hashable {
    /// The ALPN protocol both ends agreed on.
    public let negotiatedProtocol: String?
    /// The `tls-exporter` channel binding (RFC 9266): 32 bytes, equal on both ends of one connection only.
    public let channelBinding: [UInt8]
    /// The SHA-256 fingerprint of the peer certificate's public key, when the peer presented one.
    public let peerPublicKeyFingerprint: PublicKeyFingerprint?
}

/// TLS 1.3 through OpenSSL for one channel, client or server.
///
/// Writes issued before the handshake completes are buffered, with their promises, and sent in order once it
/// does; flushes are remembered the same way. Past `maximumBufferedPlaintext` the connection fails rather than
/// drop a write. After every step the ciphertext OpenSSL produced is written out at
/// once, so the handler itself holds no plaintext after the handshake beyond writes not yet flushed: inbound
/// plaintext is passed on a record at a time (at most 16 KiB per read), outbound plaintext is encrypted when it is
/// flushed, the writes of one flush together in as few records as their bytes need. KeyUpdate messages are answered
/// inside reads. `close` sends close_notify and waits up to `shutdownTimeout` for the peer's; a close_notify from the
/// peer is answered and the channel closed. Failures (handshake, timeout, bad record, pin mismatch) are fired as a
/// `TLSError` and close the channel; later writes fail with `TLSError.closed`.
public final class TLSHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    enum State {
        case idle
        case handshaking
        case active
        case closing
        case closed
    }

    private(set) var state: State = .idle
    private let connection: TLSConnection
    private let configuration: TLSConfiguration
    private var bufferedWrites: [(data: ByteBuffer, promise: EventLoopPromise<Void>?)] = []
    /// How many of `bufferedWrites` the application had flushed: replay flushes after exactly those.
    private var bufferedFlushedCount = 0
    /// Plaintext written since the last flush, encrypted at the flush: writes flushed together (a relay's answers to
    /// the sends one commit settled, a client's window of requests) go out in as few records as their bytes need,
    /// not a record each, which spares both ends a record's work per write.
    private var unflushedWrites: [(data: ByteBuffer, promise: EventLoopPromise<Void>?)] = []
    /// Their bytes. Once they fill a record they are encrypted without waiting for the flush, so that the ciphertext
    /// reaches the channel as it is written and the channel's writability (back-pressure) still counts it: a writer
    /// that writes while the channel is writable and flushes later would otherwise pile up its whole output here.
    private var unflushedByteCount = 0
    private var closePromise: EventLoopPromise<Void>?
    private var handshakeTimer: Scheduled<Void>?
    private var shutdownTimer: Scheduled<Void>?
    private var readSinceReadComplete = false
    /// Our last handshake flight is written to the channel but not flushed yet: it waits, while the application hears
    /// of the handshake, for what the application writes at once.
    private var lastFlightUnflushed = false
    /// The buffer records are decrypted into during one read burst, reused once the application has let go of the
    /// previous record (`clear()` allocates anew while it holds on); dropped at read-complete, so an idle
    /// connection keeps none.
    private var readBuffer: ByteBuffer?
    /// Our close_notify is out after `close(mode: .output)`: reads go on, writes fail.
    private var outputClosed = false

    /// The most plaintext buffered before the handshake completes. A write beyond it fails the connection with
    /// `bufferLimit`, together with every buffered write, so no later write is ever sent without an earlier one.
    /// (The channel stays writable during the handshake; a bulk writer waits for it, as `HandshakeObserver` allows.)
    public static let maximumBufferedPlaintext = 16 << 20

    /// The event fired at handshake completion, kept for later readers (the relay's login).
    public private(set) var handshakeInfo: TLSHandshakeCompletedEvent?

    /// - Parameter serverName: for a client with pinned trust, the SNI name to send (optional).
    public init(context: TLSContext, serverName: String? = nil) throws {
        connection = try TLSConnection(context: context, serverName: serverName)
        configuration = context.configuration
    }

    /// Plaintext the handler holds: writes buffered before the handshake completed.
    package var bufferedPlaintextByteCount: Int {
        bufferedWrites.reduce(0) { $0 + $1.data.readableBytes }
    }

    /// Whether OpenSSL frees this connection's record buffers while it is idle (for tests).
    package var _testOnly_releasesRecordBuffers: Bool { connection.releasesRecordBuffers }

    /// An exporter value of this connection (RFC 8446 §7.5), available once the handshake completed.
    public func exportKeyingMaterial(label: String, context: [UInt8]?, length: Int) throws -> [UInt8] {
        guard state == .active || state == .closing else {
            throw TLSError(.handshakeFailed, "keying material is available only after the handshake")
        }
        return try connection.exportKeyingMaterial(label: label, context: context, length: length)
    }

    /// Sends a KeyUpdate that also asks the peer to update its keys. For tests and long-lived connections.
    public func requestKeyUpdate(context: ChannelHandlerContext) {
        guard state == .active, connection.requestKeyUpdate() else { return }
        flushCiphertext(context: context, promise: nil)
    }

    // MARK: - Lifecycle

    public func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { beginHandshake(context: context) }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimers()
        failBufferedWrites(TLSError(.closed, "the TLS handler was removed"))
        closePromise?.fail(TLSError(.closed, "the TLS handler was removed while closing"))
        closePromise = nil
    }

    public func channelActive(context: ChannelHandlerContext) {
        beginHandshake(context: context)
        context.fireChannelActive()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        let wasState = state
        state = .closed
        cancelTimers()
        failBufferedWrites(TLSError(.closed, "the connection closed"))
        switch wasState {
        case .handshaking:
            context.fireErrorCaught(TLSError(.handshakeFailed, "the peer closed the connection during the handshake"))
        case .active:
            // No close_notify: whatever the peer meant to send may have been cut short.
            context.fireErrorCaught(TLSError(.uncleanShutdown, "the connection closed without close_notify"))
        case .idle, .closing, .closed:
            break
        }
        closePromise?.succeed()
        closePromise = nil
        context.fireChannelInactive()
    }

    private func beginHandshake(context: ChannelHandlerContext) {
        guard state == .idle else { return }
        state = .handshaking
        handshakeTimer = context.eventLoop.assumeIsolated().scheduleTask(in: configuration.handshakeTimeout) {
            guard self.state == .handshaking else { return }
            self.fail(context: context, TLSError(.handshakeTimeout, "no handshake within \(self.configuration.handshakeTimeout)"))
        }
        handshakeStep(context: context)
    }

    // MARK: - Inbound

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let ciphertext = unwrapInboundIn(data)
        switch state {
        case .idle:
            connection.receive(ciphertext)
            beginHandshake(context: context)
        case .handshaking:
            connection.receive(ciphertext)
            handshakeStep(context: context)
        case .active, .closing:
            connection.receive(ciphertext)
            readPlaintext(context: context)
        case .closed:
            break  // after a failure or close: drop
        }
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event, state == .active || state == .handshaking {
            // The peer's FIN came without its close_notify: what it sent may have been cut short.
            context.fireErrorCaught(TLSError(.uncleanShutdown, "the peer closed its side without close_notify"))
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        readBuffer = nil
        if readSinceReadComplete {
            readSinceReadComplete = false
            context.fireChannelReadComplete()
        } else if state == .active || state == .closing {
            // Ciphertext came but no whole record: the application saw nothing to react to, so ask for more
            // ourselves, or a channel with autoRead off would stall (harmless when autoRead is on).
            context.read()
        }
    }

    private func handshakeStep(context: ChannelHandlerContext) {
        switch connection.handshakeStep() {
        case .wantsMoreInput:
            flushCiphertext(context: context, promise: nil)
            context.read()  // the handshake needs the peer's flight even if the application has not asked to read
        case .failed(let error):
            fail(context: context, error)
        case .complete:
            handshakeTimer?.cancel()
            handshakeTimer = nil
            let negotiated = connection.negotiatedProtocol
            // OpenSSL lets a handshake without ALPN through (the server's callback only runs when the client offers
            // the extension); a peer that agreed on none of our protocols speaks something else.
            if !configuration.applicationProtocols.isEmpty, negotiated == nil {
                // The handshake completed, so the peer can read an orderly end: close_notify, then close
                // (transport.md §Closing), not a cut connection it would have to tell from an attack.
                _ = connection.shutdownStep()
                fail(context: context, TLSError(.handshakeFailed, "the peer agreed on no application protocol"))
                return
            }
            let binding: [UInt8]
            do {
                binding = try connection.exportKeyingMaterial(label: "EXPORTER-Channel-Binding", context: nil, length: 32)
            } catch let error as TLSError {
                fail(context: context, error)
                return
            } catch {
                fail(context: context, TLSError(.protocolError, "channel binding: \(error)"))
                return
            }
            state = .active
            // Our last flight (a client's Finished) is written now but flushed once the application has heard of
            // the handshake, so that what it writes at once (a client's first request) leaves in the same system
            // call and segment, and the peer reads both together. Not when buffered writes the application has not
            // flushed are about to be replayed: they reach the channel encrypted but unflushed, and a flush for
            // our flight would send them too.
            lastFlightUnflushed = writeCiphertext(context: context, promise: nil)
            if lastFlightUnflushed, bufferedWrites.count > bufferedFlushedCount {
                flushChannel(context: context)
            }
            let info = TLSHandshakeCompletedEvent(
                negotiatedProtocol: negotiated,
                channelBinding: binding,
                peerPublicKeyFingerprint: connection.peerPublicKeyFingerprint
            )
            handshakeInfo = info
            // Buffered writes go first, so anything the application writes when it hears of the handshake follows them.
            replayBufferedWrites(context: context)
            guard state == .active else { return }
            context.fireUserInboundEventTriggered(TLSUserEvent.handshakeCompleted(negotiatedProtocol: negotiated))
            context.fireUserInboundEventTriggered(info)
            readPlaintext(context: context)  // application data may have come with the peer's last flight
            if lastFlightUnflushed { flushChannel(context: context) }
        }
    }

    private func readPlaintext(context: ChannelHandlerContext) {
        reading: while state == .active || state == .closing {
            var buffer = readBuffer ?? context.channel.allocator.buffer(capacity: TLSConnection.maximumRecordPlaintext)
            readBuffer = nil
            buffer.clear()
            switch connection.readPlaintext(into: &buffer) {
            case .data:
                readSinceReadComplete = true
                readBuffer = buffer
                context.fireChannelRead(wrapInboundOut(buffer))
            case .wantsMoreInput:
                readBuffer = buffer
                break reading
            case .closed:
                peerSentCloseNotify(context: context)
                return
            case .failed(let error):
                fail(context: context, error)
                return
            }
        }
        // Reads may have produced output: KeyUpdate answers, but nothing may follow our close_notify.
        if state == .active { connection.sendQueuedKeyUpdate() }
        flushCiphertext(context: context, promise: nil)
    }

    private func peerSentCloseNotify(context: ChannelHandlerContext) {
        // What was written goes out before our close_notify, flushed or not, as when each write was encrypted at once.
        encryptUnflushedWrites(context: context)
        guard state == .active || state == .closing else { return }
        let initiatedByUs = state == .closing
        state = .closing
        if !initiatedByUs {
            _ = connection.shutdownStep()  // our close_notify in reply; close once it has been written
            let written = context.eventLoop.makePromise(of: Void.self)
            flushCiphertext(context: context, promise: written)
            written.futureResult.assumeIsolated().whenComplete { _ in self.finishClose(context: context) }
            return
        }
        finishClose(context: context)
    }

    // MARK: - Outbound

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let plaintext = unwrapOutboundIn(data)
        switch state {
        case .idle, .handshaking:
            guard bufferedPlaintextByteCount + plaintext.readableBytes <= Self.maximumBufferedPlaintext else {
                // Dropping this write and sending later ones would cut a hole in the stream (writers such as
                // NIOAsyncChannel pass no promise and would never know): the connection fails instead.
                let error = TLSError(.bufferLimit, "more than \(Self.maximumBufferedPlaintext) bytes written before the handshake completed")
                promise?.fail(error)
                fail(context: context, error)
                return
            }
            bufferedWrites.append((plaintext, promise))
        case .active where !outputClosed:
            unflushedWrites.append((plaintext, promise))
            unflushedByteCount += plaintext.readableBytes
            if unflushedByteCount >= TLSConnection.maximumRecordPlaintext {
                encryptUnflushedWrites(context: context)
            }
        case .active, .closing, .closed:
            promise?.fail(TLSError(.closed, "write after the connection started closing"))
        }
    }

    public func flush(context: ChannelHandlerContext) {
        switch state {
        case .idle, .handshaking:
            bufferedFlushedCount = bufferedWrites.count
        case .active, .closing:
            encryptUnflushedWrites(context: context)
            flushChannel(context: context)
        case .closed:
            break
        }
    }

    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode == .output, state == .active, !outputClosed {
            // Half-close: close_notify first, so the peer can tell the end of our data from a cut connection.
            encryptUnflushedWrites(context: context)
            guard state == .active else { return context.close(mode: mode, promise: promise) }
            outputClosed = true
            _ = connection.shutdownStep()
            flushCiphertext(context: context, promise: nil)
            context.close(mode: .output, promise: promise)
            return
        }
        guard mode == .all else {
            context.close(mode: mode, promise: promise)
            return
        }
        switch state {
        case .idle, .handshaking:
            state = .closed
            cancelTimers()
            failBufferedWrites(TLSError(.closed, "closed before the handshake completed"))
            context.close(mode: mode, promise: promise)
        case .active:
            // What was written goes out before close_notify, flushed or not, as when each write was encrypted at once.
            encryptUnflushedWrites(context: context)
            guard state == .active else { return context.close(mode: mode, promise: promise) }
            state = .closing
            closePromise = promise
            switch connection.shutdownStep() {
            case .complete:
                flushCiphertext(context: context, promise: nil)
                finishClose(context: context)
            case .wantsMoreInput:
                flushCiphertext(context: context, promise: nil)
                guard state == .closing else { return }  // the flush may have closed the channel already
                shutdownTimer = context.eventLoop.assumeIsolated().scheduleTask(in: configuration.shutdownTimeout) {
                    self.finishClose(context: context)
                }
            case .failed:
                finishClose(context: context)
            }
        case .closing:
            if let promise {
                if let closePromise { closePromise.futureResult.cascade(to: promise) } else { closePromise = promise }
            }
        case .closed:
            context.close(mode: mode, promise: promise)
        }
    }

    private func encrypt(context: ChannelHandlerContext, _ plaintext: ByteBuffer, promise: EventLoopPromise<Void>?, flush: Bool) {
        let result = plaintext.withUnsafeReadableBytes { connection.writePlaintext($0) }
        switch result {
        case .complete, .wantsMoreInput:
            writeCiphertext(context: context, promise: promise)
            if flush { flushChannel(context: context) }
        case .failed(let error):
            promise?.fail(error)
            fail(context: context, error)
        }
    }

    /// Encrypts the writes since the last flush: one write as it is, several together in one buffer (up to a
    /// record's worth of bytes at a time; a larger write is encrypted on its own, never copied), each write's
    /// promise completed when the ciphertext holding it is written.
    private func encryptUnflushedWrites(context: ChannelHandlerContext) {
        guard !unflushedWrites.isEmpty else { return }
        let writes = unflushedWrites
        unflushedWrites.removeAll(keepingCapacity: true)
        unflushedByteCount = 0
        var start = 0
        while start < writes.count, state == .active {
            // The run of writes from `start` that fits one record together; at least one.
            var end = start + 1
            var byteCount = writes[start].data.readableBytes
            while end < writes.count, byteCount + writes[end].data.readableBytes <= TLSConnection.maximumRecordPlaintext {
                byteCount += writes[end].data.readableBytes
                end += 1
            }
            let run = writes[start..<end]
            start = end
            guard run.count > 1 else {
                encrypt(context: context, run.first!.data, promise: run.first!.promise, flush: false)
                continue
            }
            var plaintext = context.channel.allocator.buffer(capacity: byteCount)
            for write in run { plaintext.writeImmutableBuffer(write.data) }
            let promises = run.compactMap(\.promise)
            let promise: EventLoopPromise<Void>?
            switch promises.count {
            case 0: promise = nil
            case 1: promise = promises[0]
            default:
                let all = context.eventLoop.makePromise(of: Void.self)
                all.futureResult.assumeIsolated().whenComplete { result in
                    for each in promises { each.completeWith(result) }
                }
                promise = all
            }
            encrypt(context: context, plaintext, promise: promise, flush: false)
        }
        // The connection failed on the way: the writes not yet encrypted fail with it, in order.
        for write in writes[start...] { write.promise?.fail(TLSError(.closed, "the connection failed before this write was sent")) }
    }

    private func replayBufferedWrites(context: ChannelHandlerContext) {
        let writes = bufferedWrites
        let flushedCount = bufferedFlushedCount
        bufferedWrites = []
        bufferedFlushedCount = 0
        for (index, write) in writes.enumerated() {
            guard state == .active else {
                // An earlier write failed the connection: the rest fail too, in order.
                write.promise?.fail(TLSError(.closed, "the connection failed before this write was sent"))
                continue
            }
            encrypt(context: context, write.data, promise: write.promise, flush: index + 1 == flushedCount)
        }
    }

    // MARK: - Helpers

    /// Writes whatever ciphertext is pending with `promise` attached; with none pending, an empty write carries the
    /// promise so it still completes in order after earlier writes. Returns whether any ciphertext was written.
    @discardableResult
    private func writeCiphertext(context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) -> Bool {
        if let ciphertext = connection.takePendingCiphertext(allocator: context.channel.allocator) {
            context.write(wrapOutboundOut(ciphertext), promise: promise)
            return true
        }
        if let promise {
            context.write(wrapOutboundOut(context.channel.allocator.buffer(capacity: 0)), promise: promise)
        }
        return false
    }

    /// Writes and flushes the protocol's own output (handshake flights, alerts, KeyUpdate, close_notify). Flushes
    /// only when there was some, so the application's unflushed writes stay unflushed.
    private func flushCiphertext(context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        if writeCiphertext(context: context, promise: promise) || promise != nil { flushChannel(context: context) }
    }

    /// Flushes the channel, and with it the last handshake flight if it waits (`lastFlightUnflushed`).
    private func flushChannel(context: ChannelHandlerContext) {
        lastFlightUnflushed = false
        context.flush()
    }

    private func finishClose(context: ChannelHandlerContext) {
        guard state != .closed else { return }
        state = .closed
        cancelTimers()
        let promise = closePromise
        closePromise = nil
        context.close(mode: .all, promise: promise)
    }

    private func fail(context: ChannelHandlerContext, _ error: TLSError) {
        guard state != .closed else { return }
        state = .closed
        cancelTimers()
        flushCiphertext(context: context, promise: nil)  // the alert or close_notify, if OpenSSL produced one
        failBufferedWrites(error)
        context.fireErrorCaught(error)
        context.close(promise: nil)
    }

    private func failBufferedWrites(_ error: TLSError) {
        let writes = bufferedWrites + unflushedWrites
        bufferedWrites = []
        unflushedWrites = []
        unflushedByteCount = 0
        bufferedFlushedCount = 0
        for write in writes { write.promise?.fail(error) }
    }

    private func cancelTimers() {
        handshakeTimer?.cancel()
        handshakeTimer = nil
        shutdownTimer?.cancel()
        shutdownTimer = nil
    }
}

@available(*, unavailable)
extension TLSHandler: Sendable {}
