import CurbsideClient
import CurbsideRelay
import CurbsideTLS
import CurbsideTransport
import CurbsideWire
import Foundation
import NIOCore
import NIOPosix

/// A relay on 127.0.0.1 with a system-chosen port, one registered provider, serving until the test ends.
public struct LiveRelay: Sendable {
    public static let identity = try! TLSIdentity.selfSigned(names: ["localhost", "127.0.0.1"])
    public let port: Int
    public let task: Task<Void, any Error>
    public let gpKey = SigningKey()
    public let gp = try! Handle("amara.gp")
    public let store: SQLiteRelayStore

    public static func start(_ configure: (inout RelayConfiguration) -> Void = { _ in }) async throws -> LiveRelay {
        let store = try SQLiteRelayStore.inMemory()
        var configuration = RelayConfiguration()
        configuration.port = 0
        configure(&configuration)
        let tls = try TLSContext(configuration: .server(identity: identity, applicationProtocols: [RelayTransport.applicationProtocol]))
        let attachments = try BlobStore(root: FileManager.default.temporaryDirectory.appendingPathComponent("curbside-live-\(UUID())").path)
        let bound = try await RelayServer(configuration: configuration, tls: tls, store: store, attachments: attachments).bind()
        let relay = LiveRelay(port: bound.port, task: Task { try await bound.serve() }, store: store)
        let directory = KeyDirectory(store: store)
        let code = try await directory.enroll(relay.gp, now: .now())
        try await directory.register(relay.gp, identityKey: relay.gpKey.verifyingKey, code: code, now: .now())
        return relay
    }

    private init(port: Int, task: Task<Void, any Error>, store: SQLiteRelayStore) {
        self.port = port
        self.task = task
        self.store = store
    }

    /// Sends `request` on a fresh connection after reading the challenge; returns the reply and the challenge.
    /// `make` builds the request from the challenge and the channel binding.
    public func exchange(
        _ make: @Sendable (LoginChallenge, [UInt8]) -> [RelayMessage]
    ) async throws -> [RelayMessage] {
        let (channel, info) = try await connect()
        return try await channel.executeThenClose { inbound, outbound in
            var frames = inbound.makeAsyncIterator()
            guard let first = try await frames.next(), case .challenge(let challenge) = try RelayMessage(decoding: first) else {
                throw RelayError(.unexpectedFrame, "no challenge")
            }
            var replies: [RelayMessage] = []
            for (index, request) in make(challenge, info.channelBinding).enumerated() {
                try await outbound.write(request.frame(requestID: UInt32(index + 1)))
                // Pushes (request id 0) may come first; the reply carries the request's id, or 0 when the relay
                // closes after an error.
                var reply = try await frames.next()
                while let frame = reply, frame.requestID == 0, frame.type != RelayMessage.FrameType.error.rawValue {
                    reply = try await frames.next()
                }
                guard let reply else { break }
                guard reply.requestID == UInt32(index + 1) || reply.requestID == 0 else {
                    throw RelayError(.unexpectedFrame, "an answer to request \(reply.requestID), not \(index + 1)")
                }
                replies.append(try RelayMessage(decoding: reply))
            }
            return replies
        }
    }

    /// Stops the relay and waits until it has: the listener and every connection closed, every session ended.
    public func stop() async {
        task.cancel()
        _ = try? await task.value
    }

    /// A TLS client connection speaking frames, with the handshake's details.
    public func connect() async throws -> (NIOAsyncChannel<Frame, Frame>, TLSHandshakeCompletedEvent) {
        try await connectRelayClient(port: port)
    }
}

/// A TLS client connection to a relay on 127.0.0.1 pinned to `LiveRelay.identity`, speaking frames.
public func connectRelayClient(port: Int) async throws -> (NIOAsyncChannel<Frame, Frame>, TLSHandshakeCompletedEvent) {
    let tls = try TLSContext(
        configuration: .client(
            trust: .pinnedPublicKeys([LiveRelay.identity.certificate.publicKeyFingerprint]),
            applicationProtocols: [RelayTransport.applicationProtocol]
        )
    )
    return try await RelayTransport.connect(host: "127.0.0.1", port: port, tls: tls)
}

extension LiveRelay: StoppableFixture {}
