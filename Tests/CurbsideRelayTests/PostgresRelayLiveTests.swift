import CurbsideTLS
import CurbsideTransport
import CurbsideTestSupport
import CurbsideWire
import Foundation
import Logging
import Testing

@testable import CurbsideRelay

/// Two relay processes' servers on one PostgreSQL database, in this process: each its own store (its own pool, as a
/// process has), its own listener and its own connected clients.
final class PostgresRelayPair: @unchecked Sendable {
    let settings: PostgresSettings
    let stores: [PostgresRelayStore]
    let ports: [Int]
    let tasks: [Task<Void, any Error>]
    let gp = (handle: try! Handle("amara.gp"), key: SigningKey())
    let derm = (handle: try! Handle("osei.derm"), key: SigningKey())

    init(catchUpInterval: Duration = .seconds(1)) async throws {
        settings = try await TestPostgres.shared.newDatabase()
        var stores: [PostgresRelayStore] = []
        var ports: [Int] = []
        var tasks: [Task<Void, any Error>] = []
        for _ in 0..<2 {
            let store = try await PostgresRelayStore.open(settings: settings, logger: TestPostgres.logger)
            var configuration = RelayConfiguration()
            configuration.port = 0
            configuration.pushCatchUpInterval = catchUpInterval
            let tls = try TLSContext(configuration: .server(identity: FileRelay.identity, applicationProtocols: [RelayTransport.applicationProtocol]))
            let bound = try await RelayServer(
                configuration: configuration,
                tls: tls,
                store: store,
                attachments: PostgresAttachmentStorage(store: store)
            ).bind()
            stores.append(store)
            ports.append(bound.port)
            tasks.append(Task { try await bound.serve() })
        }
        self.stores = stores
        self.ports = ports
        self.tasks = tasks
        let keys = KeyDirectory(store: stores[0])
        for (handle, key) in [gp, derm] {
            let code = try await keys.enroll(handle, now: .now())
            try await keys.register(handle, identityKey: key.verifyingKey, code: code, now: .now())
        }
    }

    func stop() async {
        for task in tasks { task.cancel() }
        for task in tasks { _ = try? await task.value }
        for store in stores { await store.close() }
    }

    /// A logged-in connection for `who` to relay process `process`, kept open while `body` runs.
    func session<R: Sendable>(
        _ who: (handle: Handle, key: SigningKey),
        on process: Int,
        _ body: (RelayTestSession) async throws -> R
    ) async throws -> R {
        let (channel, info) = try await connectRelayClient(port: ports[process])
        return try await channel.executeThenClose { inbound, outbound in
            let session = RelayTestSession(inbound: inbound.makeAsyncIterator(), outbound: outbound)
            guard case .challenge(let challenge) = try await session.next() else { throw RelayError(.unexpectedFrame, "no challenge") }
            let login = LoginRequest(handle: who.handle, challenge: challenge, channelBinding: info.channelBinding, signedBy: who.key)
            #expect(try await session.request(.login(login)) == .loginAccepted)
            return try await body(session)
        }
    }
}

@Suite("relay processes on one PostgreSQL", .serialized)
struct PostgresRelayLiveTests {
    /// A consult stored through process A is pushed to its recipient on process B, and the delivery notice from B
    /// to its sender on A: the notification after commit crosses processes.
    @Test func aConsultStoredThroughOneProcessIsPushedByTheOther() async throws {
        // A catch-up too slow to be what delivers the pushes here: the notifications must.
        try await withStopping(try await PostgresRelayPair(catchUpInterval: .seconds(3600))) { relays in
            let envelope = Array("urgent consult via A".utf8)
            try await relays.session(relays.derm, on: 1) { derm in
                try await relays.session(relays.gp, on: 0) { gp in
                    // Both logged in; the fan-out's LISTEN is up within a moment of the relay starting.
                    try await Task.sleep(for: .milliseconds(300))
                    guard case .stored(let receipt) = try await gp.request(.send(try SendRequest(recipient: relays.derm.handle, envelope: envelope))) else {
                        Issue.record("not stored")
                        return
                    }
                    guard case .pushEnvelope(let pushed) = try await derm.nextPush() else {
                        Issue.record("no push on the other process")
                        return
                    }
                    #expect(pushed.envelope == envelope && pushed.envelopeID == receipt.envelopeID && pushed.sender == relays.gp.handle)
                    #expect(try await derm.request(.acknowledge([pushed.envelopeID])) == .acknowledged(count: 1))
                    guard case .pushNotice(let notice) = try await gp.nextPush() else {
                        Issue.record("no notice pushed to the sender on the other process")
                        return
                    }
                    #expect(notice.kind == .deliveredToDevice && notice.envelopeID == receipt.envelopeID)
                }
            }
        }
    }

    /// A notification that never arrives delays the push until the next catch-up; it does not lose it. The envelope
    /// is stored through process B's own store object, whose notifications B ignores as its own, and not through a
    /// session, so only B's catch-up can push it.
    @Test func aLostNotificationIsMadeUpByTheCatchUp() async throws {
        try await withStopping(try await PostgresRelayPair(catchUpInterval: .milliseconds(200))) { relays in
            let envelope = Array("consult whose notification was lost".utf8)
            try await relays.session(relays.derm, on: 1) { derm in
                let now = Timestamp.now()
                let outcome = try await relays.stores[1].enqueue(envelope, from: relays.gp.handle, to: relays.derm.handle, now: now, expiresAt: now.adding(seconds: 600))
                guard case .stored = outcome else {
                    Issue.record("not stored: \(outcome)")
                    return
                }
                guard case .pushEnvelope(let pushed) = try await derm.nextPush() else {
                    Issue.record("the catch-up did not push it")
                    return
                }
                #expect(pushed.envelope == envelope)
            }
        }
    }

    /// An upload begun through one process continues through the other, is committed there, and either process
    /// serves the download: the bytes are rows of the database, not files of one machine.
    @Test func anUploadContinuesThroughTheOtherProcessAndEitherServesIt() async throws {
        try await withStopping(try await PostgresRelayPair()) { relays in
            let bytes = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            let id = SHA256.hash(bytes)
            let half = bytes.count / 2
            let first = try await relays.session(relays.gp, on: 0) { gp in
                _ = try await gp.request(.openUpload(OpenUpload(attachmentID: id, size: UInt64(bytes.count))))
                return try await gp.request(.uploadChunk(try UploadChunk(attachmentID: id, offset: 0, data: Array(bytes[..<half]))))
            }
            guard case .uploadStatus(let afterFirst) = first else {
                Issue.record("first half refused: \(String(describing: first))")
                return
            }
            #expect(afterFirst.held == UInt64(half))
            try await relays.session(relays.gp, on: 1) { gp in
                guard case .uploadStatus(let status) = try await gp.request(.openUpload(OpenUpload(attachmentID: id, size: UInt64(bytes.count)))) else {
                    Issue.record("no status on the other process")
                    return
                }
                #expect(status.held == UInt64(half), "process B sees what process A received")
                // A chunk at a stale offset is refused with the offset the relay holds.
                guard case .error(let code, _) = try await gp.request(.uploadChunk(try UploadChunk(attachmentID: id, offset: 0, data: [1]))) else {
                    Issue.record("a chunk at a stale offset was accepted")
                    return
                }
                #expect(code == RelayError.Code.offsetMismatch.rawValue)
                _ = try await gp.request(.uploadChunk(try UploadChunk(attachmentID: id, offset: UInt64(half), data: Array(bytes[half...]))))
                guard case .uploadStatus(let committed) = try await gp.request(.commitUpload(attachmentID: id)) else {
                    Issue.record("commit refused")
                    return
                }
                #expect(committed.state == .complete)
                guard case .stored = try await gp.request(.send(try SendRequest(recipient: relays.derm.handle, envelope: [9, 9], attachments: [id]))) else {
                    Issue.record("a send naming the attachment was refused")
                    return
                }
            }
            // The recipient downloads through process A, in two ranges that cross the chunk boundary.
            let downloaded = try await relays.session(relays.derm, on: 0) { derm in
                var out: [UInt8] = []
                while out.count < bytes.count {
                    guard case .attachmentData(let data) = try await derm.request(
                        .download(DownloadRequest(attachmentID: id, offset: UInt64(out.count), length: 100_000))
                    ) else { break }
                    out += data.data
                }
                return out
            }
            #expect(downloaded == bytes)
        }
    }

    /// commit_upload_as on PostgreSQL: opened under a provisional id through one process, named by its hash through
    /// the other, which checks the rows' bytes; the downloaded file is the one uploaded.
    @Test func aProvisionalUploadIsCommittedUnderItsHashThroughTheOtherProcess() async throws {
        try await withStopping(try await PostgresRelayPair()) { relays in
            let bytes = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 131) }
            let id = SHA256.hash(bytes)
            let provisional = SHA256.hash(Array("provisional".utf8))
            let first = try await relays.session(relays.gp, on: 0) { gp in
                _ = try await gp.request(.openUpload(OpenUpload(attachmentID: provisional, size: 300_000)))
                return try await gp.request(.uploadChunk(try UploadChunk(attachmentID: provisional, offset: 0, data: bytes)))
            }
            guard case .uploadStatus(let uploaded) = first else {
                Issue.record("the chunk was refused: \(String(describing: first))")
                return
            }
            #expect(uploaded.held == 200_000 && uploaded.size == 300_000)
            let (wrong, committed) = try await relays.session(relays.gp, on: 1) { gp in
                (
                    try await gp.request(.commitUploadAs(CommitUploadAs(uploadID: provisional, attachmentID: SHA256.hash([1]), size: 200_000))),
                    try await gp.request(.commitUploadAs(CommitUploadAs(uploadID: provisional, attachmentID: id, size: 200_000)))
                )
            }
            // The wrong hash discarded the bytes and left the upload under that hash, so the second finds no upload.
            #expect(wrong?.withoutDetail == .error(RelayError(.attachmentHashMismatch, "")).withoutDetail)
            #expect(committed?.withoutDetail == .error(RelayError(.unknownAttachment, "")).withoutDetail)
            let second = try await relays.session(relays.gp, on: 0) { gp in
                _ = try await gp.request(.openUpload(OpenUpload(attachmentID: provisional, size: 300_000)))
                _ = try await gp.request(.uploadChunk(try UploadChunk(attachmentID: provisional, offset: 0, data: bytes)))
                return try await gp.request(.commitUploadAs(CommitUploadAs(uploadID: provisional, attachmentID: id, size: 200_000)))
            }
            guard case .uploadStatus(let status) = second else {
                Issue.record("the commit was refused: \(String(describing: second))")
                return
            }
            #expect(status.state == .complete && status.size == 200_000)
            let downloaded = try await relays.session(relays.gp, on: 1) { gp in
                try await gp.request(.download(DownloadRequest(attachmentID: id, offset: 0, length: 1 << 20)))
            }
            #expect(downloaded == .attachmentData(AttachmentData(size: 200_000, offset: 0, data: bytes)))
        }
    }

    /// A tampered upload fails its commit and starts again at 0, on PostgreSQL as on files.
    @Test func aCommitWhoseBytesDoNotHashToTheIdDiscardsThem() async throws {
        try await withStopping(try await PostgresRelayPair()) { relays in
            let bytes = [UInt8](repeating: 7, count: 1000)
            let id = SHA256.hash(bytes + [0])
            try await relays.session(relays.gp, on: 0) { gp in
                _ = try await gp.request(.openUpload(OpenUpload(attachmentID: id, size: 1000)))
                _ = try await gp.request(.uploadChunk(try UploadChunk(attachmentID: id, offset: 0, data: bytes)))
                guard case .error(let code, _) = try await gp.request(.commitUpload(attachmentID: id)) else {
                    Issue.record("a commit of the wrong bytes was accepted")
                    return
                }
                #expect(code == RelayError.Code.attachmentHashMismatch.rawValue)
                guard case .uploadStatus(let status) = try await gp.request(.openUpload(OpenUpload(attachmentID: id, size: 1000))) else { return }
                #expect(status.held == 0 && status.state == .uploading)
            }
        }
    }
}

extension RelayMessage {
    /// An error frame with its detail removed, to compare codes only.
    var withoutDetail: RelayMessage {
        if case .error(let code, _) = self { return .error(code: code, detail: "") }
        return self
    }
}
