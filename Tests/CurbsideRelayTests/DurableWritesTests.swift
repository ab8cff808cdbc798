import CurbsideTestSupport
import CurbsideWire
import Foundation
import GRDB
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import Testing

@testable import CurbsideRelay

/// What happens once a send's transaction commits: the completion handed to `enqueue` runs after the commit (never
/// before, never for a failed transaction), and the frames it gathers go out one flush per channel.
@Suite("writes once durable")
struct DurableWritesTests {
    let gp = try! Handle("amara.gp")
    let derm = try! Handle("osei.derm")
    let now = Timestamp(millisecondsSince1970: 1_800_000_000_000)

    func submission(_ text: String) -> Submission {
        Submission(body: Array(text.utf8), sender: gp, recipient: derm, storedAt: now, expiresAt: now.adding(seconds: 3600))
    }

    /// SQLite runs the completion on its writer right after the commit: another connection to the file sees the
    /// envelope by then (what is pushed or answered `stored` is in the database for everyone), and `enqueue` has not
    /// returned yet.
    @Test func theCompletionRunsOnceAnotherConnectionSeesTheEnvelope() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("curbside-durable-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("relay.sqlite").path
        let store = try await SQLiteRelayStore(path: path).withProviders()
        let other = try DatabaseQueue(path: path)
        let returned = NIOLockedValueBox(false)
        let seen = NIOLockedValueBox<(outcome: EnqueueOutcome, rows: Int, returned: Bool)?>(nil)
        let outcome = try await store.enqueue(submission("consult")) { outcome, _ in
            let rows = (try? other.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM envelope") }) ?? nil
            seen.withLockedValue { $0 = (outcome, rows ?? -1, returned.withLockedValue { $0 }) }
        }
        returned.withLockedValue { $0 = true }
        let completion = try #require(seen.withLockedValue { $0 })
        guard case .stored = outcome else {
            Issue.record("not stored: \(outcome)")
            return
        }
        #expect(completion.outcome == outcome)
        #expect(completion.rows == 1, "the completion ran before the envelope was visible to another connection")
        #expect(!completion.returned, "the completion ran after enqueue returned")
    }

    /// Each send of a batch gets its own outcome, refusals and retries included, on both stores.
    @Test(arguments: StoreKind.allCases) func eachCompletionGetsItsSendsOutcome(_ kind: StoreKind) async throws {
        let store = try await kind.makeStore().withProviders()
        _ = try await store.enqueue(submission("sent before"))
        let stranger = Submission(
            body: Array("to nobody".utf8), sender: gp, recipient: try Handle("no.one"), storedAt: now, expiresAt: now.adding(seconds: 60)
        )
        for item in [submission("new"), submission("sent before"), stranger] {
            let seen = NIOLockedValueBox<EnqueueOutcome?>(nil)
            let outcome = try await store.enqueue(item) { outcome, _ in seen.withLockedValue { $0 = outcome } }
            #expect(seen.withLockedValue { $0 } == outcome)
        }
    }

    /// A send handed over without waiting (`submit`) is settled once, with its own outcome, on both stores: sends
    /// handed over together share transactions, and refusals and retries are settled like the rest.
    @Test(arguments: StoreKind.allCases) func eachSubmittedSendIsSettledOnceWithItsOutcome(_ kind: StoreKind) async throws {
        let store = try await kind.makeStore().withProviders()
        _ = try await store.enqueue(submission("sent before"))
        let stranger = Submission(
            body: Array("to nobody".utf8), sender: gp, recipient: try Handle("no.one"), storedAt: now, expiresAt: now.adding(seconds: 60)
        )
        let items = (0..<20).map { submission("consult \($0)") } + [submission("sent before"), stranger]
        let settled = NIOLockedValueBox<[Int: [EnqueueOutcome?]]>([:])
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let remaining = NIOLockedValueBox(items.count)
            for (n, item) in items.enumerated() {
                store.submit(item) { result, _ in
                    settled.withLockedValue { $0[n, default: []].append(try? result.get()) }
                    if remaining.withLockedValue({ $0 -= 1; return $0 }) == 0 { done.resume() }
                }
            }
        }
        let outcomes = settled.withLockedValue { $0 }
        #expect(items.indices.allSatisfy { outcomes[$0]?.count == 1 }, "each send is settled exactly once: \(outcomes)")
        var sequences: Set<Int64> = []
        for n in 0..<20 {
            guard case .stored(let sequence)?? = outcomes[n]?.first else { Issue.record("consult \(n): \(String(describing: outcomes[n]))"); continue }
            sequences.insert(sequence)
        }
        #expect(sequences.count == 20)
        guard case .duplicate?? = outcomes[20]?.first else { Issue.record("the retry: \(String(describing: outcomes[20]))"); return }
        #expect(outcomes[21]?.first == .unknownRecipient)
        #expect(try await store.queueUsage(for: derm).envelopes == 21)
    }

    /// A transaction that fails settles every send handed over for it with its error, and stores none of them.
    @Test func aFailedTransactionSettlesEverySubmittedSendWithItsError() async throws {
        let store = try await SQLiteRelayStore.inMemory().withProviders()
        try await store.database.write { db in
            try db.execute(sql: "CREATE TRIGGER full_disk BEFORE INSERT ON envelope BEGIN SELECT RAISE(ABORT, 'no room'); END")
        }
        let failures = NIOLockedValueBox<[String]>([])
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let remaining = NIOLockedValueBox(3)
            for n in 0..<3 {
                store.submit(submission("consult \(n)")) { result, writes in
                    if case .failure(let error) = result { failures.withLockedValue { $0.append("\(error)") } }
                    if remaining.withLockedValue({ $0 -= 1; return $0 }) == 0 { done.resume() }
                }
            }
        }
        #expect(failures.withLockedValue { $0.count } == 3)
        #expect(failures.withLockedValue { $0 }.allSatisfy { $0.contains("no room") })
        #expect(try await store.queueUsage(for: derm).envelopes == 0)
    }

    /// A transaction that fails runs no completion: nothing is pushed or answered `stored` for it.
    @Test func aFailedTransactionRunsNoCompletion() async throws {
        struct DiskFull: Error {}
        let committer = GroupCommit { _ in throw DiskFull() }
        let ran = NIOLockedValueBox(false)
        await #expect(throws: DiskFull.self) {
            try await committer.enqueue(submission("consult")) { _, _ in ran.withLockedValue { $0 = true } }
        }
        #expect(!ran.withLockedValue { $0 })
    }

    /// Messages gathered for one channel go out in order with one flush; each channel gets its own.
    @Test func framesForAChannelShareOneFlush() async throws {
        let (first, _, firstCounter) = try await FlushCounter.framedChannel()
        let (second, _, secondCounter) = try await FlushCounter.framedChannel()
        var writes = DurableWrites()
        for n in 0..<5 { writes.write(.noticesAcknowledged, requestID: UInt32(n), to: n == 2 ? second : first) }
        writes.flush()
        await first.testingEventLoop.run()
        await second.testingEventLoop.run()
        var written: [UInt32] = []
        while let frame = try await first.readOutbound(as: Frame.self) { written.append(frame.requestID) }
        #expect(written == [0, 1, 3, 4])
        #expect(try await second.readOutbound(as: Frame.self)?.requestID == 2)
        #expect(try await firstCounter.count(on: first) == 1)
        #expect(try await secondCounter.count(on: second) == 1)
    }

    /// A send's answer is left to its task when the channel cannot take it (the task waits for the channel); a
    /// refusal is always left to it.
    @Test func anAnswerIsLeftToItsTaskWhenTheChannelIsNotWritable() async throws {
        let (channel, _, _) = try await FlushCounter.framedChannel()
        let clients = ConnectedClients()
        let blocked = CommittedSend(submission("consult"), clients: clients, answeringOn: channel, requestID: 7)
        channel.isWritable = false
        var writes = DurableWrites()
        blocked.run(.stored(sequence: 1), &writes)
        writes.flush()
        await channel.testingEventLoop.run()
        #expect(!blocked.wasAnswered)
        #expect(try await channel.readOutbound(as: Frame.self) == nil)
        channel.isWritable = true
        let refused = CommittedSend(submission("consult"), clients: clients, answeringOn: channel, requestID: 8)
        refused.run(.queueFull, &writes)
        #expect(!refused.wasAnswered)
        let answered = CommittedSend(submission("consult"), clients: clients, answeringOn: channel, requestID: 9)
        answered.run(.stored(sequence: 2), &writes)
        writes.flush()
        await channel.testingEventLoop.run()
        #expect(answered.wasAnswered)
        #expect(try await channel.readOutbound(as: Frame.self)?.requestID == 9)
        #expect(try await channel.readOutbound(as: Frame.self) == nil)
    }

    /// A push goes out once per key; one that found no writable connection is not remembered, so a later path (the
    /// PostgreSQL fan-out's catch-up) can still push it.
    @Test func aPushIsRememberedOnlyOnceWritten() async throws {
        let (channel, _, _) = try await FlushCounter.framedChannel()
        let clients = ConnectedClients()
        clients.add(derm, id: UUID(), channel: channel, key: SigningKey().verifyingKey)
        channel.isWritable = false
        var writes = DurableWrites()
        clients.push(.noticesAcknowledged, to: derm, once: .envelope(1), into: &writes)
        channel.isWritable = true
        clients.push(.noticesAcknowledged, to: derm, once: .envelope(1), into: &writes)
        clients.push(.noticesAcknowledged, to: derm, once: .envelope(1), into: &writes)
        clients.push(.noticesAcknowledged, to: derm, once: .envelope(1))
        clients.push(.noticesAcknowledged, to: derm, once: .notice(1))
        writes.flush()
        await channel.testingEventLoop.run()
        var written = 0
        while try await channel.readOutbound(as: Frame.self) != nil { written += 1 }
        #expect(written == 2, "envelope 1 once, notice 1 once")
    }
}
