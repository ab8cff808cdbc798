import CurbsideTestSupport
import CurbsideWire
import Foundation
import Testing

@testable import CurbsideRelay

/// A client may keep several sends in flight on one connection (spec/relay.md: answers carry their request ids): the
/// relay stores them concurrently, so they share group commits, and answers each once its envelope is durable.
@Suite("pipelined sends")
struct PipelinedSendTests {
    @Test func sendsInFlightOnOneConnectionShareCommitsAndAreEachAnswered() async throws {
        try await withStopping(try await FileRelay(accounts: .all, inMemory: true)) { relay in
            let derm = relay.derm.handle
            let bodies = (0..<96).map { n in Array("pipelined consult \(n)".utf8) + [UInt8](repeating: UInt8(n), count: 1000) }
            var messages = try bodies.map { RelayMessage.send(try SendRequest(recipient: derm, envelope: $0)) }
            // A request of another kind among them waits for the sends before it and answers as after them.
            messages.insert(.fetchNotices(after: 0), at: 48)
            let before = await (try relay.store).groupCommitStatistics
            let answers = try await relay.session(relay.gp) { session in try await session.requests(messages, batch: messages.count) }
            let after = await (try relay.store).groupCommitStatistics

            #expect(answers.count == messages.count)
            for (index, answer) in answers.enumerated() {
                if index == 48 {
                    guard case .notices = answer else { Issue.record("the notice fetch was answered \(answer)"); continue }
                } else {
                    guard case .stored(let receipt) = answer else { Issue.record("send \(index) was answered \(answer)"); continue }
                    let body = bodies[index < 48 ? index : index - 1]
                    #expect(receipt.envelopeID == SHA256.hash(body), "send \(index) answered with another envelope's receipt")
                }
            }
            let transactions = after.transactions - before.transactions, envelopes = after.envelopes - before.envelopes
            #expect(envelopes == bodies.count)
            #expect(transactions < bodies.count, "one connection's sends were written one transaction each: \(transactions)")
            #expect(try await (try relay.store).queueUsage(for: derm).envelopes == bodies.count)
        }
    }

    /// Sends in flight that the store refuses are answered with their own codes (by a task, not where the transaction
    /// finished), the sends around them are stored and answered, and a request after them sees them all.
    @Test func refusalsInFlightAreAnsweredEachWithItsCode() async throws {
        try await withStopping(try await FileRelay(accounts: .all, inMemory: true)) { relay in
            let derm = relay.derm.handle, nobody = try Handle("no.one")
            var messages = try (0..<40).map { n in
                RelayMessage.send(try SendRequest(recipient: n % 3 == 1 ? nobody : derm, envelope: Array("consult \(n)".utf8)))
            }
            messages.append(.fetchNotices(after: 0))
            let answers = try await relay.session(relay.gp) { session in try await session.requests(messages, batch: messages.count) }
            #expect(answers.count == messages.count)
            for (n, answer) in answers.dropLast().enumerated() {
                if n % 3 == 1 {
                    guard case .error(let code, _) = answer else { Issue.record("send \(n) to nobody was answered \(answer)"); continue }
                    #expect(code == RelayError.Code.unknownHandle.rawValue, "send \(n)")
                } else {
                    guard case .stored(let receipt) = answer else { Issue.record("send \(n) was answered \(answer)"); continue }
                    #expect(receipt.envelopeID == SHA256.hash(Array("consult \(n)".utf8)), "send \(n)")
                }
            }
            guard case .notices = answers.last else { Issue.record("the notice fetch was answered \(answers.last.map { "\($0)" } ?? "nothing")"); return }
            #expect(try await (try relay.store).queueUsage(for: derm).envelopes == (0..<40).filter { $0 % 3 != 1 }.count)
        }
    }

    /// With one send in flight per connection (the setting at 1), each is its own transaction: what the test above
    /// tells apart.
    @Test func oneInFlightWritesEachAlone() async throws {
        try await withStopping(try await FileRelay(accounts: .all, inMemory: true) { $0.maximumSendsInFlightPerConnection = 1 }) { relay in
            let derm = relay.derm.handle
            let messages = try (0..<20).map { RelayMessage.send(try SendRequest(recipient: derm, envelope: Array("consult \($0)".utf8))) }
            let before = await (try relay.store).groupCommitStatistics
            let answers = try await relay.session(relay.gp) { session in try await session.requests(messages, batch: messages.count) }
            let after = await (try relay.store).groupCommitStatistics
            #expect(answers.allSatisfy { if case .stored = $0 { true } else { false } })
            #expect(after.transactions - before.transactions == 20)
        }
    }
}
