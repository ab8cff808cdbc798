import CurbsideTestSupport
import CurbsideWire
import Foundation
import GRDB
import Testing

@testable import CurbsideClient
@testable import CurbsideRelay

@Suite("photo metadata")
struct MetadataFilterTests {
    static func filter(_ bytes: [UInt8], step: Int) -> ([UInt8], Set<MetadataFilter.Removed>) {
        var filter = MetadataFilter()
        var out: [UInt8] = []
        var offset = 0
        while offset < bytes.count {
            out += filter.update(Array(bytes[offset..<min(offset + step, bytes.count)]))
            offset += step
        }
        out += filter.finish()
        return (out, filter.removed)
    }

    @Test(arguments: [1, 100, 4096, 1 << 20])
    func aJPEGLosesItsGPSDataAndNothingElse(_ step: Int) {
        let photo = SamplePhoto.jpeg()
        let (out, removed) = Self.filter(photo, step: step)
        #expect(removed == [.gpsLocation])
        #expect(out.count == photo.count)
        let gps = SamplePhoto.tiffStart + 26
        let latitude = SamplePhoto.tiffStart + 26 + 2 + 36 + 4
        let changed = Set((0..<photo.count).filter { photo[$0] != out[$0] })
        #expect(!changed.isEmpty)
        // Only the GPS directory (count and entries) and the latitude it pointed to changed.
        #expect(changed.allSatisfy { (gps..<(gps + 2 + 36)).contains($0) || (latitude..<(latitude + 24)).contains($0) })
        #expect(out[gps] == 0 && out[gps + 1] == 0, "the directory is empty")
        #expect(out[(gps + 2)..<(gps + 38)].allSatisfy { $0 == 0 }, "no GPS entry left")
        #expect(Self.filter(out, step: step).1.isEmpty, "filtering again finds nothing")
    }

    /// Phones append more JPEGs after the first one's end (Multi-Picture Format: depth maps, previews), each with its
    /// own EXIF: on main only the first image's GPS was removed, so a second copy of the location travelled.
    @Test(arguments: [1, 100, 4096, 1 << 20])
    func imagesAppendedAfterTheFirstLoseTheirGPSToo(_ step: Int) {
        let first = SamplePhoto.jpeg(scan: 600_000), second = SamplePhoto.jpeg(scan: 3_000)
        let trailer = Array("not an image".utf8)
        let file = first + second + trailer
        let (out, removed) = Self.filter(file, step: step)
        #expect(removed == [.gpsLocation])
        #expect(out.count == file.count, "in place: the offsets an MPF index holds stay right")
        for start in [0, first.count] {
            let gps = start + SamplePhoto.tiffStart + 26
            #expect(out[gps] == 0 && out[gps + 1] == 0 && out[(gps + 2)..<(gps + 38)].allSatisfy { $0 == 0 }, "image at \(start)")
        }
        // The image data and what follows the last image are untouched.
        #expect(out[(first.count - 1000)..<first.count] == file[(first.count - 1000)..<first.count])
        #expect(Array(out.suffix(trailer.count)) == trailer)
        #expect(Self.filter(out, step: step).1.isEmpty, "filtering again finds nothing")
    }

    /// IPTC keeps place names (city, sub-location, country) in a Photoshop APP13 segment: zeroed, same size.
    @Test func IPTCPlaceNamesAreZeroed() {
        let photo = SamplePhoto.jpeg(scan: 2_000)
        let resource = Array("8BIM".utf8) + [0x04, 0x04, 0, 0] + [0, 0, 0, 14] + [0x1C, 0x02, 0x5A, 0, 6] + Array("London".utf8) + [0, 0, 0]
        let payload = Array("Photoshop 3.0\0".utf8) + resource
        let segment: [UInt8] = [0xFF, 0xED, UInt8((payload.count + 2) >> 8), UInt8((payload.count + 2) & 255)] + payload
        let file = Array(photo.prefix(2)) + segment + Array(photo.dropFirst(2))
        let (out, removed) = Self.filter(file, step: 64)
        #expect(removed == [.gpsLocation, .iptcPlaceNames])
        #expect(out.count == file.count)
        #expect(out.firstRange(of: Array("London".utf8)) == nil && out.firstRange(of: Array("8BIM".utf8)) == nil)
        #expect(Array(out[2..<(2 + 4 + 14)]) == Array(segment.prefix(4 + 14)), "the segment and its header stay")
    }

    @Test func aPNGLosesItsTextChunksOnly() {
        func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
            let length = data.count
            return [UInt8(length >> 24), UInt8(length >> 16 & 255), UInt8(length >> 8 & 255), UInt8(length & 255)]
                + Array(type.utf8) + data + [1, 2, 3, 4]
        }
        let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        let header = chunk("IHDR", [UInt8](repeating: 1, count: 13))
        let image = chunk("IDAT", (0..<70_000).map { UInt8($0 % 256) })
        let end = chunk("IEND", [])
        let png = signature + header + chunk("tEXt", Array("Comment\0GPS 51.5 N".utf8)) + image
            + chunk("iTXt", Array("XML:com.adobe.xmp\0\0\0\0\0<x/>".utf8)) + chunk("zTXt", [1, 2]) + end
        for step in [1, 33, 65_536] {
            let (out, removed) = Self.filter(png, step: step)
            #expect(out == signature + header + image + end)
            #expect(removed == [.pngTextChunks])
        }
    }

    @Test func malformedJPEGSegmentsPassWithoutACrash() {
        for length: UInt8 in [0, 1] {
            let broken: [UInt8] = [0xFF, 0xD8, 0xFF, 0xE0, 0x00, length] + [UInt8](repeating: 7, count: 100)
            #expect(Self.filter(broken, step: 10).0 == broken)
        }
    }

    @Test func xmpLocationIsBlankedAndPNGExifDropped() {
        let xmp = Array("http://ns.adobe.com/xap/1.0/\0<x:xmpmeta exif:GPSLatitude=\"51,30N\"/>".utf8)
        let jpeg: [UInt8] = [0xFF, 0xD8, 0xFF, 0xE1, UInt8((xmp.count + 2) >> 8), UInt8((xmp.count + 2) & 255)] + xmp
            + [0xFF, 0xDA, 0, 2, 1, 2, 3, 0xFF, 0xD9]
        let (out, removed) = Self.filter(jpeg, step: 5)
        #expect(removed == [.xmpLocation] && out.count == jpeg.count)
        #expect(out.firstRange(of: Array("GPSLatitude".utf8)) == nil)
        #expect(out.suffix(9) == jpeg.suffix(9), "the image data is untouched")

        func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
            [0, 0, 0, UInt8(data.count)] + Array(type.utf8) + data + [9, 9, 9, 9]
        }
        let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        let png = signature + chunk("IHDR", [1, 2, 3]) + chunk("eXIf", SamplePhoto.exif) + chunk("IEND", [])
        #expect(Self.filter(png, step: 3).0 == signature + chunk("IHDR", [1, 2, 3]) + chunk("IEND", []))
    }

    @Test func formatsThatCannotBeCleanedAreRefusedUnlessKept() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("curbside-heic-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("photo.heic").path
        let heic = SamplePhoto.ftyp("heic", ["mif1", "heic"])
        try Data(heic).write(to: URL(fileURLWithPath: path))
        #expect(throws: ClientError.self) { _ = try AttachmentFiles.prepare(AttachmentSource(path: path), into: path + ".age") }
        let kept = try AttachmentFiles.prepare(AttachmentSource(path: path, keepMetadata: true), into: path + ".age")
        #expect(kept.size > UInt64(heic.count) && kept.mediaType == "image/heic")
    }

    @Test func otherFilesPassUnchanged() {
        let bytes = (0..<10_000).map { UInt8($0 * 13 % 256) }
        #expect(Self.filter(bytes, step: 999).0 == bytes)
        #expect(Self.filter([1, 2, 3], step: 1).0 == [1, 2, 3])
    }
}

@Suite("checking received attachments")
struct AttachmentCheckTests {
    /// One pass over a received file, however its bytes arrive (a resumed download feeds the bytes on disk, then
    /// those from the network): size and SHA-256 decide first, so damage on the way is fetched again
    /// (`AttachmentCheckFailed`); the sender's own bytes that do not decrypt with the identity it gave are refused with
    /// the age error.
    @Test(arguments: [1, 4096, AgeEncryptor.chunkSize + 16, 1 << 20])
    func aReceivedFileIsCheckedInOnePass(_ step: Int) throws {
        var rng = SplitMix64(seed: 64)
        let identity = AgreementKey.Private()
        var encryptor = try AgeEncryptor(recipient: identity.publicKey)
        let file = encryptor.header + (try encryptor.update(rng.bytes(3 * AgeEncryptor.chunkSize + 100))) + (try encryptor.finish())
        func check(_ bytes: [UInt8], with identity: AgreementKey.Private, size: Int? = nil, sha256: [UInt8]? = nil) throws {
            var check = AttachmentCheck(identity: identity)
            var offset = 0
            while offset < bytes.count {
                let end = min(offset + step, bytes.count)
                check.update(Array(bytes[offset..<end]))
                offset = end
            }
            try check.finish(size: UInt64(size ?? bytes.count), sha256: sha256 ?? SHA256.hash(bytes))
        }
        try check(file, with: identity)

        var damaged = file
        damaged[damaged.count / 2] ^= 0x01
        #expect(throws: AttachmentCheckFailed.self) { try check(damaged, with: identity, sha256: SHA256.hash(file)) }
        #expect(throws: AttachmentCheckFailed.self) { try check(file, with: identity, size: file.count + 1) }
        #expect(throws: AttachmentCheckFailed.self) { try check(Array(file.dropLast()), with: identity, sha256: SHA256.hash(file)) }

        let tampered = #expect(throws: AgeError.self) { try check(damaged, with: identity) }
        #expect(tampered?.code == .decryptionFailed)
        let cut = #expect(throws: AgeError.self) { try check(Array(file.dropLast(AgeEncryptor.chunkSize / 2)), with: identity) }
        #expect(cut?.code == .decryptionFailed || cut?.code == .truncated)
        let stranger = #expect(throws: AgeError.self) { try check(file, with: AgreementKey.Private()) }
        #expect(stranger?.code == .noMatchingStanza)
    }
}

@Suite("attachments between clients", .serialized)
struct AttachmentClientTests {
    static func write(_ bytes: [UInt8], _ name: String, in directory: URL) throws -> String {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent(name).path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test func imagesTravelEncryptedAndArriveChecked() async throws {
        try await withStopping(try await Providers.start()) { providers in
            let gp = try await providers.create("amara.gp")
            let derm = try await providers.create("osei.derm")
            var rng = SplitMix64(seed: 61)
            let scan = rng.bytes(300_000)
            let files = providers.root.appendingPathComponent("files")
            let scanPath = try Self.write(scan, "scan.bin", in: files)
            let photoPath = try Self.write(SamplePhoto.jpeg(), "forearm.jpg", in: files)

            let sent = try await gp.send(try Providers.consult(), to: derm.me.handle, attachments: [
                AttachmentSource(path: photoPath), AttachmentSource(path: scanPath, keepMetadata: true),
            ])
            #expect(sent.stored)
            #expect(try await derm.sync().received == 1)
            let id = try MessageID(rawValue: try #require([UInt8](hexString: sent.id)))
            let shown = try await derm.show(id)
            #expect(shown.attachments.map(\.fileName) == ["forearm.jpg", "scan.bin"])
            #expect(shown.attachments.map(\.state) == [.saved, .saved])
            #expect(shown.attachments.first?.mediaType == "image/jpeg")

            let saveDirectory = providers.root.appendingPathComponent("saved").path
            let saved = try await derm.saveAttachments(of: id, to: saveDirectory)
            #expect(saved.count == 2)
            let photo = Array(try Data(contentsOf: URL(fileURLWithPath: saved[0])))
            #expect(photo.count == SamplePhoto.jpeg().count && photo != SamplePhoto.jpeg(), "same size, GPS removed")
            #expect(MetadataFilterTests.filter(photo, step: 1 << 20).1.isEmpty, "no GPS data arrived")
            #expect(Array(try Data(contentsOf: URL(fileURLWithPath: saved[1]))) == scan)

            // Raw files check with Debian's age and the single-use identity.
            let raw = try await derm.saveAttachments(of: id, to: providers.root.appendingPathComponent("raw").path, raw: true)
            #expect(raw.map { ($0 as NSString).lastPathComponent } == ["forearm.jpg.age", "forearm.jpg.key", "scan.bin.age", "scan.bin.key"])
            let keyMode = try FileManager.default.attributesOfItem(atPath: raw[3])[.posixPermissions] as? Int
            #expect(keyMode == 0o600)
            let age = Process()
            age.executableURL = URL(fileURLWithPath: "/usr/bin/age")
            age.arguments = ["-d", "-i", raw[3], raw[2]]
            let out = Pipe()
            age.standardOutput = out
            try age.run()
            let decrypted = out.fileHandleForReading.readDataToEndOfFile()
            age.waitUntilExit()
            #expect(age.terminationStatus == 0 && Array(decrypted) == scan)

            // The sender sees it delivered; the relay kept nothing after the acknowledgement.
            _ = try await gp.sync()
            #expect(try await gp.status(id).first?.delivered != nil)
            #expect(try await SQLiteRelayStore(path: providers.relay.path).statistics().attachments == 0)
        }
    }

    /// A large file goes up while it is encrypted: committed under its SHA-256 by the time the encryption ends,
    /// so the flush sends no byte of it again; the recipient gets it intact.
    @Test func aFileIsUploadedWhileItIsEncrypted() async throws {
        try await withStopping(try await Providers.start()) { providers in
            let gp = try await providers.create("amara.gp")
            let derm = try await providers.create("osei.derm")
            await gp.setUploadWhileEncryptingFrom(0)
            var rng = SplitMix64(seed: 64)
            let scan = rng.bytes(5 << 20)
            let path = try Self.write(scan, "scan.bin", in: providers.root.appendingPathComponent("files"))
            let id = MessageID.random()
            let (files, unreachable) = try await gp.prepareAttachments([AttachmentSource(path: path, keepMetadata: true)], for: id)
            #expect(unreachable == nil)
            let file = try #require(files.first?.0)
            let uploadID = try #require(file.earlyUpload).id
            let early = try #require(await gp.earlyUploads[uploadID])
            guard case .committed = await early.value else {
                Issue.record("not committed while encrypted: \(await early.value)")
                return
            }
            let store = try SQLiteRelayStore(path: providers.relay.path)
            let upload = try #require(try await store.upload(owner: gp.me.handle, id: file.sha256))
            #expect(upload.complete && upload.size == file.size)
            #expect(try await store.statistics().attachments == 1, "no provisional upload left")
            for (file, _) in files { unlink(file.path) }

            // Through a whole send: the flush finds the file on the relay and sends only the consult.
            let proxy = try CuttingProxy(target: providers.relay.port, cuts: 0, after: 1...1, seed: 3)
            defer { proxy.stop() }
            let endpoint = RelayEndpoint(host: "127.0.0.1", port: proxy.port, fingerprint: providers.endpoint.fingerprint)
            let counted = try Client(me: gp.me, relay: endpoint, home: gp.home, identity: gp.identity, database: gp.database, logger: Client.silentLogger)
            await counted.setUploadWhileEncryptingFrom(0)
            let sent = try await counted.send(try Providers.consult(), to: derm.me.handle, attachments: [AttachmentSource(path: path, keepMetadata: true)])
            #expect(sent.stored)
            let encryptedSize = try #require(try await gp.attachments(of: try MessageID(rawValue: [UInt8](hexString: sent.id)!)).first).size
            #expect(proxy.clientToRelayBytes < encryptedSize + 64 * 1024, "the file went up once")
            #expect(try await derm.sync().received == 1)
            let received = try MessageID(rawValue: try #require([UInt8](hexString: sent.id)))
            let saved = try await derm.saveAttachments(of: received, to: providers.root.appendingPathComponent("saved").path)
            #expect(Array(try Data(contentsOf: URL(fileURLWithPath: try #require(saved.first)))) == scan)
        }
    }

    /// A relay older than commit_upload_as: nothing is uploaded while encrypting (the provisional upload, if opened,
    /// is abandoned) and the file goes up by its hash as before.
    @Test func aRelayWithoutCommitUploadAsGetsTheFileByItsHash() async throws {
        try await withStopping(try await Providers.start { $0._testOnly_refusesCommitUploadAs = true }) { providers in
            let gp = try await providers.create("amara.gp")
            let derm = try await providers.create("osei.derm")
            await gp.setUploadWhileEncryptingFrom(0)
            var rng = SplitMix64(seed: 65)
            let scan = rng.bytes(3 << 20)
            let path = try Self.write(scan, "scan.bin", in: providers.root.appendingPathComponent("files"))
            let (files, _) = try await gp.prepareAttachments([AttachmentSource(path: path, keepMetadata: true)], for: .random())
            let uploadID = try #require(files.first?.0.earlyUpload).id
            let early = try #require(await gp.earlyUploads[uploadID])
            guard case .none = await early.value else {
                Issue.record("an upload was left to continue on a relay that cannot commit it")
                return
            }
            for (file, _) in files { unlink(file.path) }
            #expect(try await SQLiteRelayStore(path: providers.relay.path).statistics().attachments == 0, "the provisional upload was abandoned")
            let sent = try await gp.send(try Providers.consult(), to: derm.me.handle, attachments: [AttachmentSource(path: path, keepMetadata: true)])
            #expect(sent.stored)
            #expect(try await derm.sync().received == 1)
            let received = try MessageID(rawValue: try #require([UInt8](hexString: sent.id)))
            #expect(try await derm.attachments(of: received).map(\.state) == [.saved])
        }
    }

    /// The consult is queued as soon as its file is encrypted, while the upload that began with the encryption is
    /// still going on a slow link: a crash then leaves it in the outbox, as it would without that upload.
    @Test func aConsultIsQueuedBeforeItsEarlyUploadEnds() async throws {
        try await withStopping(try await Providers.start()) { providers in
            let gp = try await providers.create("amara.gp")
            let derm = try await providers.create("osei.derm")
            var rng = SplitMix64(seed: 67)
            let path = try Self.write(rng.bytes(6 << 20), "scan.bin", in: providers.root.appendingPathComponent("files"))
            let proxy = try CuttingProxy(target: providers.relay.port, cuts: 0, after: 1...1, seed: 5, delayMicroseconds: 20_000)
            defer { proxy.stop() }
            let endpoint = RelayEndpoint(host: "127.0.0.1", port: proxy.port, fingerprint: providers.endpoint.fingerprint)
            let slow = try Client(me: gp.me, relay: endpoint, home: gp.home, identity: gp.identity, database: gp.database, logger: Client.silentLogger)
            await slow.setUploadWhileEncryptingFrom(0)
            let sending = Task { try await slow.send(try Providers.consult(), to: derm.me.handle, attachments: [AttachmentSource(path: path, keepMetadata: true)]) }
            var queued = 0
            for _ in 0..<200 where queued == 0 {
                try await Task.sleep(for: .milliseconds(25))
                queued = try await gp.database.writer.read { db in try OutboxStore.count(db) }
            }
            #expect(queued == 1, "queued while the upload goes on")
            #expect(try await SQLiteRelayStore(path: providers.relay.path).statistics().queuedEnvelopes == 0, "not yet sent")
            let sent = try await sending.value
            #expect(sent.stored)
            #expect(try await gp.database.writer.read { db in try OutboxStore.count(db) } == 0)
        }
    }

    /// The connection that uploads while encrypting drops: the flush continues the provisional upload from what the
    /// relay holds, under the same id, and commits it by its hash; no byte goes up twice beyond the chunks in flight.
    @Test func anUploadCutWhileEncryptingIsContinuedByTheFlush() async throws {
        try await withStopping(try await Providers.start()) { providers in
            let gp = try await providers.create("amara.gp")
            let derm = try await providers.create("osei.derm")
            var rng = SplitMix64(seed: 66)
            let scan = rng.bytes(6 << 20)
            let path = try Self.write(scan, "scan.bin", in: providers.root.appendingPathComponent("files"))
            let proxy = try CuttingProxy(target: providers.relay.port, cuts: 1, after: (1600 << 10)...(1700 << 10), seed: 4)
            defer { proxy.stop() }
            let endpoint = RelayEndpoint(host: "127.0.0.1", port: proxy.port, fingerprint: providers.endpoint.fingerprint)
            let lossy = try Client(me: gp.me, relay: endpoint, home: gp.home, identity: gp.identity, database: gp.database, logger: Client.silentLogger)
            await lossy.setUploadWhileEncryptingFrom(0)
            let sent = try await lossy.send(try Providers.consult(), to: derm.me.handle, attachments: [AttachmentSource(path: path, keepMetadata: true)])
            #expect(sent.stored)
            #expect(proxy.cutsDone == 1)
            let id = try MessageID(rawValue: try #require([UInt8](hexString: sent.id)))
            let record = try #require(try await gp.database.writer.read { db in try AttachmentStore.attachments(db, of: id) }.first)
            #expect(record.provisional != nil && record.state == .uploaded, "continued under its provisional id")
            let resent = Int64(proxy.clientToRelayBytes) - Int64(record.size)
            #expect(resent <= Int64(2 * Client.transferChunk + 64 * 1024), "at most two chunks (and the logins) again")
            #expect(try await SQLiteRelayStore(path: providers.relay.path).statistics().attachments == 1)
            #expect(try await derm.sync().received == 1)
            let saved = try await derm.saveAttachments(of: id, to: providers.root.appendingPathComponent("saved").path)
            #expect(Array(try Data(contentsOf: URL(fileURLWithPath: try #require(saved.first)))) == scan)
        }
    }

    /// The relay changes a stored file: the recipient refuses it (size and SHA-256 are checked) and tells the sender.
    @Test func aFileChangedOnTheRelayIsRefusedAndReported() async throws {
        try await withStopping(try await Providers.start()) { providers in
            let gp = try await providers.create("amara.gp")
            let derm = try await providers.create("osei.derm")
            var rng = SplitMix64(seed: 62)
            let path = try Self.write(rng.bytes(100_000), "scan.bin", in: providers.root.appendingPathComponent("files"))
            let sent = try await gp.send(try Providers.consult(), to: derm.me.handle, attachments: [AttachmentSource(path: path, keepMetadata: true)])
            let stored = try FileManager.default.contentsOfDirectory(atPath: "\(providers.relay.attachmentsPath)/complete")
            let blob = "\(providers.relay.attachmentsPath)/complete/\(try #require(stored.first))"
            var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: blob)))
            bytes[bytes.count / 2] ^= 0x40
            try Data(bytes).write(to: URL(fileURLWithPath: blob))

            _ = try await derm.sync()
            let id = try MessageID(rawValue: try #require([UInt8](hexString: sent.id)))
            #expect(try await derm.attachments(of: id).map(\.state) == [.corrupt])
            #expect(try await derm.saveAttachments(of: id, to: providers.root.appendingPathComponent("out").path).isEmpty)
            _ = try await gp.sync()
            let failed = try await gp.status(id).first?.timeline.first { $0.kind == .failed }
            #expect(failed?.detail?.hasPrefix("attachment_corrupt") == true)
        }
    }

    /// A link that drops 50 times during a 20 MiB upload and download: both finish with the right SHA-256, resuming
    /// each time where the relay (or the local file) stood, re-sending at most two chunks per drop.
    /// Chunks grow on a connection that keeps going (256 KiB for 2 MiB, 512 KiB for 4 MiB, then the protocol's
    /// 1 MiB) and never pass the protocol's limit.
    @Test func chunksGrowOnAGoodConnectionUpToTheProtocolLimit() {
        #expect((0..<8).map { Client.chunkSize(afterConfirming: $0) }.allSatisfy { $0 == 256 << 10 })
        #expect((8..<16).map { Client.chunkSize(afterConfirming: $0) }.allSatisfy { $0 == 512 << 10 })
        #expect([16, 17, 100, 10_000, Int.max / 2].map { Client.chunkSize(afterConfirming: $0) }.allSatisfy { $0 == AttachmentChunk.maximumLength })
        // Two chunks in flight while they grow, four once they are 1 MiB.
        #expect((0..<16).map { Client.window(afterConfirming: $0) }.allSatisfy { $0 == Client.transferWindow })
        #expect([16, 17, 10_000, Int.max / 2].map { Client.window(afterConfirming: $0) }.allSatisfy { $0 == 4 })
    }

    @Test func transfersResumeThroughFiftyDrops() async throws {
        try await withStopping(try await Providers.start()) { providers in
            let gp = try await providers.create("amara.gp")
            let derm = try await providers.create("osei.derm")
            var rng = SplitMix64(seed: 63)
            let size = 20 << 20
            let path = try Self.write(rng.bytes(size), "scan.bin", in: providers.root.appendingPathComponent("files"))
            let original = try AttachmentFiles.digest(path)

            func viaProxy(_ client: Client, cuts: Int, seed: UInt64) throws -> (Client, CuttingProxy) {
                let proxy = try CuttingProxy(target: providers.relay.port, cuts: cuts, after: (400 << 10)...(1200 << 10), seed: seed)
                let endpoint = RelayEndpoint(host: "127.0.0.1", port: proxy.port, fingerprint: providers.endpoint.fingerprint)
                return (try Client(me: client.me, relay: endpoint, home: client.home, identity: client.identity, database: client.database, logger: Client.silentLogger), proxy)
            }
            let (gpLossy, upProxy) = try viaProxy(gp, cuts: 25, seed: 1)
            defer { upProxy.stop() }
            await gpLossy.setRetryLimit(10)
            let sent = try await gpLossy.send(try Providers.consult(), to: derm.me.handle, attachments: [AttachmentSource(path: path, keepMetadata: true)])
            #expect(sent.stored)
            #expect(upProxy.cutsDone == 25)
            let encryptedSize = try #require(try await gp.attachments(of: try MessageID(rawValue: [UInt8](hexString: sent.id)!)).first).size
            let resent = Int64(upProxy.clientToRelayBytes) - Int64(encryptedSize)
            print("upload: \(upProxy.cutsDone) drops, \(resent) bytes beyond the file (\(resent / Int64(upProxy.cutsDone)) per drop)")
            #expect(resent <= Int64(upProxy.cutsDone) * Int64(2 * Client.transferChunk + 32 * 1024), "at most two chunks (and a login) per drop")

            let (dermLossy, downProxy) = try viaProxy(derm, cuts: 25, seed: 2)
            defer { downProxy.stop() }
            await dermLossy.setRetryLimit(10)
            let report = try await dermLossy.sync()
            #expect(report.received == 1 && report.reachedRelay)
            #expect(downProxy.cutsDone == 25)
            let id = try MessageID(rawValue: try #require([UInt8](hexString: sent.id)))
            #expect(try await derm.attachments(of: id).map(\.state) == [.saved])
            let saved = try await derm.saveAttachments(of: id, to: providers.root.appendingPathComponent("saved").path)
            let arrived = try AttachmentFiles.digest(saved[0])
            #expect(arrived.size == original.size && arrived.sha256 == original.sha256)
        }
    }
}
