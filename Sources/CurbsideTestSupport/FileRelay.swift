import CurbsideClient
import CurbsideRelay
import CurbsideTLS
import CurbsideTransport
import CurbsideWire
import Foundation
import NIOCore
import NIOPosix

/// The test relay: in this process, over a store file (or one in memory), restartable on its port, with amara.gp,
/// osei.derm and kofi.cardio registered. Clients pin `FileRelay.identity`.
public final class FileRelay: @unchecked Sendable {
    /// Who is registered when the relay starts.
    public enum Accounts: Sendable { case all, gpOnly, none }

    /// The TLS identity every test relay presents (a self-signed certificate for localhost and 127.0.0.1).
    public static let identity = try! TLSIdentity.selfSigned(names: ["localhost", "127.0.0.1"])

    // Set up in init and by restart(), both called from the test's own task only.
    public let path: String
    public let attachmentsPath: String
    public var port = 0
    public var task: Task<Void, any Error>?
    public let gp = (handle: try! Handle("amara.gp"), key: SigningKey())
    public let derm = (handle: try! Handle("osei.derm"), key: SigningKey())
    public let cardio = (handle: try! Handle("kofi.cardio"), key: SigningKey())
    public let configure: @Sendable (inout RelayConfiguration) -> Void
    /// The store when it is kept in memory (runs of thousands of sends, where an fsync each would take minutes).
    private let memoryStore: SQLiteRelayStore?
    /// The temporary directory made for this relay when none was given, which `discard` removes.
    private let madeDirectory: URL?

    /// - Parameters:
    ///   - directory: where the store and attachments go; by default a fresh temporary directory, removed when the
    ///     relay is discarded (`withStopping` does it).
    ///   - accounts: who is registered at the start: gp, derm and cardio; gp alone (tests that register derm
    ///     themselves); nobody (another relay's directory reopened, or profiles that register through the CLI).
    ///   - inMemory: the store is in memory (attachments still go to `directory`); a restart keeps it.
    public init(
        directory given: URL? = nil,
        accounts: Accounts = .all,
        inMemory: Bool = false,
        configure: @escaping @Sendable (inout RelayConfiguration) -> Void = { _ in }
    ) async throws {
        let directory = given ?? FileManager.default.temporaryDirectory.appendingPathComponent("curbside-relay-\(UUID())")
        madeDirectory = given == nil ? directory : nil
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        path = directory.appendingPathComponent("relay.sqlite").path
        attachmentsPath = directory.appendingPathComponent("attachments").path
        self.configure = configure
        memoryStore = inMemory ? try SQLiteRelayStore.inMemory() : nil
        let registering: [(handle: Handle, key: SigningKey)] =
            switch accounts {
            case .all: [gp, derm, cardio]
            case .gpOnly: [gp]
            case .none: []
            }
        for (handle, key) in registering { try await register(handle, key: key) }
        try await start()
    }
    /// The store instance the running relay uses (its counters are its own), since the last `start`.
    public private(set) var servingStore: SQLiteRelayStore?

    public func start() async throws {
        var configuration = RelayConfiguration()
        // A restart keeps the port clients know; the first start takes one no port-0 bind can be handed meanwhile.
        if port == 0 { port = try LoopbackPort.free() }
        configuration.port = port
        configure(&configuration)
        let tls = try TLSContext(configuration: .server(identity: FileRelay.identity, applicationProtocols: [RelayTransport.applicationProtocol]))
        let serving = try memoryStore ?? SQLiteRelayStore(path: path)
        servingStore = serving
        let bound = try await RelayServer(
            configuration: configuration,
            tls: tls,
            store: serving,
            attachments: try BlobStore(root: attachmentsPath)
        ).bind()
        port = bound.port
        task = Task { try await bound.serve() }
    }

    public func stop() async {
        task?.cancel()
        _ = try? await task?.value
    }

    /// The relay's store (the one in memory, or the file opened once more).
    public var store: SQLiteRelayStore {
        get throws { try memoryStore ?? SQLiteRelayStore(path: path) }
    }

    /// Enrolls and registers another provider (with a new key unless `key` is given).
    @discardableResult
    public func register(_ handle: Handle, key: SigningKey = SigningKey()) async throws -> (handle: Handle, key: SigningKey) {
        let keys = KeyDirectory(store: try store)
        let code = try await keys.enroll(handle, now: .now())
        try await keys.register(handle, identityKey: key.verifyingKey, code: code, now: .now())
        return (handle, key)
    }

    /// A logged-in connection for `who`, kept open while `body` runs.
    public func session<R: Sendable>(
        _ who: (handle: Handle, key: SigningKey),
        _ body: (RelayTestSession) async throws -> R
    ) async throws -> R {
        let (channel, info) = try await connectRelayClient(port: port)
        return try await channel.executeThenClose { inbound, outbound in
            let session = RelayTestSession(inbound: inbound.makeAsyncIterator(), outbound: outbound)
            guard case .challenge(let challenge) = try await session.next() else { throw RelayError(.unexpectedFrame, "no challenge") }
            let login = LoginRequest(handle: who.handle, challenge: challenge, channelBinding: info.channelBinding, signedBy: who.key)
            guard try await session.request(.login(login)) == .loginAccepted else {
                throw RelayError(.loginFailed, "\(who.handle) was not logged in")
            }
            return try await body(session)
        }
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

    /// A TLS client connection speaking frames, with the handshake's details.
    public func connect() async throws -> (NIOAsyncChannel<Frame, Frame>, TLSHandshakeCompletedEvent) {
        try await connectRelayClient(port: port)
    }
}

/// Requests and replies on one connection; pushes that arrive in between are kept for `nextPush`.
public final class RelayTestSession: @unchecked Sendable {
    // Used from one task at a time (the test body).
    private var inbound: NIOAsyncChannelInboundStream<Frame>.AsyncIterator
    private let outbound: NIOAsyncChannelOutboundWriter<Frame>
    private var pushes: [RelayMessage] = []
    private var nextID: UInt32 = 100

    public init(inbound: NIOAsyncChannelInboundStream<Frame>.AsyncIterator, outbound: NIOAsyncChannelOutboundWriter<Frame>) {
        self.inbound = inbound
        self.outbound = outbound
    }

    public func next() async throws -> RelayMessage? {
        try await inbound.next().map { try RelayMessage(decoding: $0) }
    }

    public func request(_ message: RelayMessage) async throws -> RelayMessage? {
        nextID += 1
        try await outbound.write(message.frame(requestID: nextID))
        while let frame = try await inbound.next() {
            if frame.requestID == nextID { return try RelayMessage(decoding: frame) }
            pushes.append(try RelayMessage(decoding: frame))
        }
        return nil
    }

    /// Writes requests without waiting for their answers (pipelining).
    public func write(_ messages: [RelayMessage]) async throws {
        for message in messages {
            nextID += 1
            try await outbound.write(message.frame(requestID: nextID))
        }
    }

    /// Answers to `messages`, in order, written `batch` at a time before their answers are read (pipelining, so a
    /// run of thousands of requests does not wait a round trip for each).
    public func requests(_ messages: [RelayMessage], batch: Int = 200) async throws -> [RelayMessage] {
        var answers: [RelayMessage] = []
        for start in stride(from: 0, to: messages.count, by: batch) {
            let chunk = messages[start..<min(start + batch, messages.count)]
            let first = nextID + 1
            try await write(Array(chunk))
            var byID: [UInt32: RelayMessage] = [:]
            while byID.count < chunk.count, let frame = try await inbound.next() {
                let message = try RelayMessage(decoding: frame)
                if (first...nextID).contains(frame.requestID) { byID[frame.requestID] = message } else { pushes.append(message) }
            }
            answers += (first...nextID).compactMap { byID[$0] }
        }
        return answers
    }

    /// Every frame until the relay closes the connection.
    public func drain() async throws -> [Frame] {
        var frames: [Frame] = []
        while let frame = try await inbound.next() { frames.append(frame) }
        return frames
    }

    public func nextPush() async throws -> RelayMessage? {
        if !pushes.isEmpty { return pushes.removeFirst() }
        return try await next()
    }
}

extension FileRelay: StoppableFixture {
    /// Removes the temporary directory made for this relay, if it made one (a directory it was given is left).
    public func discard() {
        if let madeDirectory { try? FileManager.default.removeItem(at: madeDirectory) }
    }
}

/// A TLS client connection to a relay on 127.0.0.1 pinned to `FileRelay.identity`, speaking frames.
public func connectRelayClient(port: Int) async throws -> (NIOAsyncChannel<Frame, Frame>, TLSHandshakeCompletedEvent) {
    let tls = try TLSContext(
        configuration: .client(
            trust: .pinnedPublicKeys([FileRelay.identity.certificate.publicKeyFingerprint]),
            applicationProtocols: [RelayTransport.applicationProtocol]
        )
    )
    return try await RelayTransport.connect(host: "127.0.0.1", port: port, tls: tls)
}

