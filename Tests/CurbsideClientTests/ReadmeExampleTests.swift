import CurbsideClient
import CurbsideTestSupport
import CurbsideWire
import Foundation
import Testing

/// The integrator's example in README.md, word for word, compiled and run against a live relay: this file imports
/// `CurbsideClient` without `@testable`, so the example uses the public API only.
@Suite("README examples", .serialized)
struct ReadmeExampleTests {
    @Test func sendAndWaitForDeliveryReturnsOnceTheDeliveredReceiptIsBack() async throws {
        try await withStopping(try await Providers.start()) { providers in
            let gp = try await providers.create("amara.gp")
            let derm = try await providers.create("osei.derm")
            // The specialist's device, online: it fetches the consult and sends its delivered receipt.
            let specialist = Task {
                while !Task.isCancelled {
                    _ = try? await derm.sync()
                    try? await Task.sleep(for: .milliseconds(200))
                }
            }
            defer { specialist.cancel() }
            let status = try await sendAndWaitForDelivery(
                home: providers.root.appendingPathComponent(gp.me.handle.rawValue),
                passphrase: Providers.passphrase,
                to: derm.me.handle
            )
            #expect(status.summary.kind == .consult && status.summary.direction == .outgoing)
            #expect(status.stored != nil && status.delivered != nil)
            #expect(status.timeline.map(\.kind).contains(.delivered))
            specialist.cancel()
            _ = await specialist.value
        }
    }

    /// README.md shows exactly the code below the mark at the end of this file.
    @Test func theReadmeShowsThisCode() throws {
        let here = URL(fileURLWithPath: #filePath)
        let source = try String(contentsOf: here, encoding: .utf8)
        let marker = "// MARK: - README.md, \"The client library\"\n\n"
        let example = try #require(source.range(of: marker).map { String(source[$0.upperBound...]) })
        let readme = try String(
            contentsOf: here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("README.md"),
            encoding: .utf8
        )
        #expect(example.count > 500 && readme.contains("```swift\nimport CurbsideClient\nimport CurbsideWire\nimport Foundation\n\n" + example + "```"))
    }
}

// MARK: - README.md, "The client library"

/// Sends a consult from the profile in `home` and waits, syncing once a second, until the specialist's device
/// has saved it (its `delivered` receipt came back); returns its timeline.
func sendAndWaitForDelivery(home: URL, passphrase: SecretBytes, to specialist: Handle) async throws -> ConsultStatus {
    let client = try await Client.open(home: home, passphrase: passphrase)
    let consult = try Consult(
        subject: "Pigmented lesion, left forearm",
        urgency: .urgent,
        specialty: "dermatology",
        question: "Does this need excision within two weeks?",
        clinicalSummary: "54-year-old, lesion grown over 3 months, irregular border, 7 mm."
    )
    // Saved and queued first: if the relay cannot be reached it waits in the outbox, and a later sync sends it.
    let outcome = try await client.send(consult, to: specialist)
    let id = try MessageID(rawValue: [UInt8](hexString: outcome.id) ?? [])
    for _ in 0..<60 {
        _ = try await client.sync()  // sends what waits, applies the receipts that came back
        if let status = try await client.status(id).first, status.delivered != nil { return status }
        try await Task.sleep(for: .seconds(1))
    }
    throw ClientError(.unreachable, "consult \(id) was not delivered within a minute; it stays queued or stored")
}
