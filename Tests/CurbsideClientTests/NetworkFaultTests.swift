import CurbsideTestSupport
import CurbsideWire
import Foundation
import Testing

@testable import CurbsideClient
@testable import CurbsideRelay

/// Trials of send, fetch, upload and download through a proxy that cuts the connection (FIN or RST) after a random
/// number of bytes, or freezes it for a while, sometimes on a link slowed on every read. After each trial the
/// client may have failed, but never claimed what did not happen: a send reported stored is on the relay, a
/// message in the inbox is complete, an attachment marked saved has the sender's bytes. A clean sync then
/// completes whatever was interrupted, exactly once. `CURBSIDE_FAULT_TRIALS` sets the trials per operation
/// (default 10 here; `make reliability` runs 50, 200 in all).
@Suite("network faults", .serialized)
struct NetworkFaultTests {
    enum Operation: String, CaseIterable { case send, fetch, upload, download }

    struct Tally: CustomStringConvertible {
        var trials = 0, faultsApplied = 0, clientSucceeded = 0, clientFailed = 0, completedAfterwards = 0
        var description: String {
            "\(trials) trials, \(faultsApplied) faults applied, client reported success \(clientSucceeded) and failure \(clientFailed), "
                + "\(completedAfterwards) completed by a clean sync, 0 false successes, 0 partial images marked saved"
        }
    }

    static var trialsPerOperation: Int {
        Int(ProcessInfo.processInfo.environment["CURBSIDE_FAULT_TRIALS"] ?? "") ?? 10
    }

    static func openFileCount() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0
    }

    /// This process's resident memory (relay, clients and test together), in KiB.
    static func residentKiB() -> Int {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    @Test func noFalseSuccessAndEverythingCompletesAfterFaults() async throws {
        try await withStopping(try await Providers.start()) { providers in
            let gp = try await providers.create("amara.gp")
            let derm = try await providers.create("osei.derm")
            let store = try SQLiteRelayStore(path: providers.relay.path)
            var rng = SplitMix64(seed: ProcessInfo.processInfo.environment["CURBSIDE_FAULT_SEED"].flatMap(UInt64.init) ?? 20261129)
            let image = try AttachmentClientTests.write(rng.bytes(300_000), "still.bin", in: providers.root.appendingPathComponent("files"))
            let original = try AttachmentFiles.digest(image)
            // One clean exchange first, so prekeys, pins and connections are in their steady state.
            _ = try await gp.send(try Providers.consult("warm-up"), to: derm.me.handle)
            _ = try await derm.sync()
            _ = try await gp.sync()
            let baselineFiles = Self.openFileCount()
            let baselineMemory = Self.residentKiB()

            var tally = Tally()
            for trial in 0..<(Self.trialsPerOperation * Operation.allCases.count) {
                let operation = Operation.allCases[trial % Operation.allCases.count]
                // Budgets cover the whole operation: handshake and login (~2 KB), a consult (~3 KB), the image (300 KB).
                let budget = operation == .upload || operation == .download ? 200...300_000 : 200...4_000
                let fault: CuttingProxy.Fault = Int.random(in: 0..<4, using: &rng) == 0 ? .stall(milliseconds: 1500) : .cut
                let delay: UInt32 = Bool.random(using: &rng) ? 0 : 200
                let proxy = try CuttingProxy(target: providers.relay.port, cuts: 1, after: budget, seed: rng.next(), fault: fault, delayMicroseconds: delay)
                defer { proxy.stop() }
                let lossyEndpoint = RelayEndpoint(host: "127.0.0.1", port: proxy.port, fingerprint: providers.endpoint.fingerprint)
                let sending = operation == .send || operation == .upload
                let account = sending ? gp : derm
                let lossy = try Client(
                    me: account.me, relay: lossyEndpoint, home: account.home, identity: account.identity,
                    database: account.database, logger: Client.silentLogger
                )
                await lossy.setRetryLimit(Int.random(in: 0...1, using: &rng))
                let context = "trial \(trial) (\(operation), \(fault), delay \(delay) µs)"
                tally.trials += 1

                let queuedBefore = try await store.statistics().queuedEnvelopes
                let id: MessageID
                if sending {
                    let attachments = operation == .upload ? [AttachmentSource(path: image, keepMetadata: true)] : []
                    let outcome = try await lossy.send(try Providers.consult("trial \(trial)"), to: derm.me.handle, attachments: attachments)
                    id = try MessageID(rawValue: try #require([UInt8](hexString: outcome.id)))
                    if outcome.stored {
                        tally.clientSucceeded += 1
                        // Reported stored: the relay holds it now, before any retry.
                        #expect(try await store.statistics().queuedEnvelopes == queuedBefore + 1, "\(context): stored but not on the relay")
                    } else {
                        tally.clientFailed += 1
                        #expect(try await gp.sync().sent == 1, "\(context): the queued consult did not go out on a clean sync")
                        tally.completedAfterwards += 1
                    }
                    let received = try await derm.sync()
                    #expect(received.received == 1, "\(context)")
                } else {
                    let attachments = operation == .download ? [AttachmentSource(path: image, keepMetadata: true)] : []
                    let outcome = try await gp.send(try Providers.consult("trial \(trial)"), to: derm.me.handle, attachments: attachments)
                    id = try MessageID(rawValue: try #require([UInt8](hexString: outcome.id)))
                    let report = try await lossy.sync()
                    let inInbox = try await derm.inbox().contains { $0.id == outcome.id }
                    if report.reachedRelay, report.received == 1 { tally.clientSucceeded += 1 } else { tally.clientFailed += 1 }
                    if inInbox, operation == .download {
                        // Whatever the sync managed, an attachment marked saved is the sender's file, whole.
                        let states = try await derm.attachments(of: id).map(\.state)
                        if states == [.saved] {
                            let saved = try await derm.saveAttachments(of: id, to: providers.root.appendingPathComponent("check-\(trial)").path)
                            let arrived = try AttachmentFiles.digest(saved[0])
                            #expect(arrived.size == original.size && arrived.sha256 == original.sha256, "\(context): saved but not whole")
                        }
                    }
                    let clean = try await derm.sync()
                    if !inInbox || clean.received > 0 { tally.completedAfterwards += 1 }
                }
                tally.faultsApplied += proxy.cutsDone
                // Exactly once in the inbox, its attachment whole, and nothing left queued on the relay for derm.
                #expect(try await derm.inbox().filter { $0.id == id.rawValue.hexString }.count == 1, "\(context): not exactly once")
                if operation == .upload || operation == .download {
                    #expect(try await derm.attachments(of: id).map(\.state) == [.saved], "\(context)")
                }
                _ = try await gp.sync()
                #expect(try await store.statistics().queuedEnvelopes == 0, "\(context): left on the relay")
            }
            // Connections the faults broke are all closed again (the relay runs in this process).
            try await Task.sleep(for: .milliseconds(500))
            let files = Self.openFileCount()
            let memory = Self.residentKiB()
            print("network faults: \(tally); open files \(baselineFiles) -> \(files), resident memory \(baselineMemory / 1024) -> \(memory / 1024) MiB")
            #expect(files <= baselineFiles + 8, "open files \(baselineFiles) -> \(files)")
            // Nothing a broken connection held stays behind: growth stays far below the bytes moved (~40 MB per 100 trials).
            #expect(memory - baselineMemory < 48 * 1024, "resident memory \(baselineMemory) -> \(memory) KiB")
            #expect(tally.faultsApplied >= tally.trials * 3 / 4, "most trials met their fault")
        }
    }

    /// A backlog written while the relay was out of reach goes out over a slow link (every read delayed): each
    /// consult stored once, in the order it was written.
    @Test func aBacklogIsFlushedInOrderOverASlowLink() async throws {
        try await withStopping(try await Providers.start()) { providers in
            let gp = try await providers.create("amara.gp")
            let derm = try await providers.create("osei.derm")
            _ = try await gp.send(try Providers.consult("warm-up"), to: derm.me.handle)  // pins derm's key
            _ = try await derm.sync()
            // A relay address nothing listens on: every consult waits in the outbox.
            let nowhere = RelayEndpoint(host: "127.0.0.1", port: 1, fingerprint: providers.endpoint.fingerprint)
            let offline = try Client(me: gp.me, relay: nowhere, home: gp.home, identity: gp.identity, database: gp.database, logger: Client.silentLogger)
            var ids: [String] = []
            for n in 0..<20 {
                let outcome = try await offline.send(try Providers.consult("backlog \(n)"), to: derm.me.handle)
                #expect(!outcome.stored)
                ids.append(outcome.id)
            }
            let proxy = try CuttingProxy(target: providers.relay.port, cuts: 0, after: 1...1, seed: 1, delayMicroseconds: 20_000)
            defer { proxy.stop() }
            let slow = try Client(
                me: gp.me,
                relay: RelayEndpoint(host: "127.0.0.1", port: proxy.port, fingerprint: providers.endpoint.fingerprint),
                home: gp.home, identity: gp.identity, database: gp.database, logger: Client.silentLogger
            )
            let start = ContinuousClock.now
            let report = try await slow.sync()
            print("backlog of 20 over a link delaying every read by 20 ms: flushed in \(ContinuousClock.now - start)")
            #expect(report.sent == 20 && report.queued == 0)
            var stored: [UInt64] = []
            for id in ids {
                let status = try await gp.status(try MessageID(rawValue: try #require([UInt8](hexString: id))))
                stored.append(try #require(status.first?.stored))
            }
            #expect(stored == stored.sorted(), "stored in the order written")
            #expect(try await derm.sync().received == 20)
            let inbox = try await derm.inbox().map(\.id)
            #expect(ids.allSatisfy { id in inbox.filter { $0 == id }.count == 1 })
        }
    }
}
