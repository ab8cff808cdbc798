import CurbsideClient
import CurbsideRelay
import CurbsideTLS
import CurbsideTransport
import CurbsideWire
import Foundation
import NIOCore
import NIOPosix

/// A relay over a store file, restartable, with two registered providers.
public final class FileRelay: @unchecked Sendable {
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

    /// - Parameters:
    ///   - directory: where the store and attachments go; a fresh temporary directory by default.
    ///   - register: register gp, derm and cardio (false to reopen another relay's directory).
    ///   - inMemory: the store is in memory (attachments still go to `directory`); a restart keeps it.
    public init(
        directory: URL = FileManager.default.temporaryDirectory.appendingPathComponent("curbside-relay-\(UUID())"),
        register: Bool = true,
        inMemory: Bool = false,
        configure: @escaping @Sendable (inout RelayConfiguration) -> Void = { _ in }
    ) async throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        path = directory.appendingPathComponent("relay.sqlite").path
        attachmentsPath = directory.appendingPathComponent("attachments").path
        self.configure = configure
        memoryStore = inMemory ? try SQLiteRelayStore.inMemory() : nil
        let keys = KeyDirectory(store: try memoryStore ?? SQLiteRelayStore(path: path))
        for (handle, key) in register ? [gp, derm, cardio] : [] {
            let code = try await keys.enroll(handle, now: .now())
            try await keys.register(handle, identityKey: key.verifyingKey, code: code, now: .now())
        }
        try await start()
    }

    public func start() async throws {
        var configuration = RelayConfiguration()
        // A restart keeps the port clients know; the first start takes one no port-0 bind can be handed meanwhile.
        if port == 0 { port = try LoopbackPort.free() }
        configuration.port = port
        configure(&configuration)
        let tls = try TLSContext(configuration: .server(identity: LiveRelay.identity, applicationProtocols: [RelayTransport.applicationProtocol]))
        let bound = try await RelayServer(
            configuration: configuration,
            tls: tls,
            store: try memoryStore ?? SQLiteRelayStore(path: path),
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

    /// Enrolls and registers another provider.
    public func register(_ handle: Handle) async throws -> (handle: Handle, key: SigningKey) {
        let key = SigningKey()
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

extension FileRelay: StoppableFixture {}
