import CurbsideClient
import CurbsideRelay
import CurbsideTLS
import CurbsideTransport
import CurbsideWire
import Foundation
import NIOCore
import NIOPosix

/// Two (or three) providers with profiles in temporary homes on a live relay.
public struct Providers: Sendable {
    public let relay: FileRelay
    public let root: URL
    public let endpoint: RelayEndpoint
    public static let passphrase = SecretBytes(Array("correct horse battery staple".utf8))

    /// A relay with nobody registered; `inMemory` keeps its store in memory, where tests can read its counters.
    public static func start(
        inMemory: Bool = false,
        _ configure: @escaping @Sendable (inout RelayConfiguration) -> Void = { _ in }
    ) async throws -> Providers {
        let relay = try await FileRelay(accounts: .none, inMemory: inMemory, configure: configure)
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("curbside-clients-\(UUID())")
        let endpoint = RelayEndpoint(host: "127.0.0.1", port: relay.port, fingerprint: FileRelay.identity.certificate.publicKeyFingerprint.bytes.hexString)
        return Providers(relay: relay, root: root, endpoint: endpoint)
    }

    /// Enrolls `handle` on the relay and creates its profile.
    public func create(_ handle: String, endpoint: RelayEndpoint? = nil) async throws -> Client {
        let handle = try Handle(handle)
        let code = try await KeyDirectory(store: try relay.store).enroll(handle, now: .now())
        return try await Client.create(
            home: root.appendingPathComponent(handle.rawValue),
            handle: handle,
            relay: endpoint ?? self.endpoint,
            enrollmentCode: code.description.lowercased(),  // as a person might type it
            passphrase: Self.passphrase,
            limits: .profile
        )
    }

    public func stop() async {
        await relay.stop()
        try? FileManager.default.removeItem(at: root)
    }

    public static func consult(_ subject: String = "Pigmented lesion, left forearm") throws -> Consult {
        try Consult(subject: subject, urgency: .urgent, specialty: "dermatology", question: "Excise within two weeks?", clinicalSummary: "54-year-old, 7 mm.")
    }
}

extension Providers: StoppableFixture {
    /// Removes the relay's temporary directory (the profiles' went with `stop`).
    public func discard() {
        relay.discard()
    }
}
