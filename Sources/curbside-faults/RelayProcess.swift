import CurbsideClient
import CurbsideTLS
import CurbsideTestSupport
import CurbsideTransport
import CurbsideWire
import Foundation
import GRDB

/// What the fault runs add to CurbsideTestSupport's RelayProcess: accounts registered over TLS, the store's
/// integrity, and a stop that must not hang.
extension RelayProcess {
    /// `relay init`, `relay enroll` for each of `names`, `relay serve`, and each account registered with a fresh key
    /// over TLS: the client context that pins this relay, and the accounts in the order of `names`.
    func startWithAccounts(_ names: [String]) async throws -> (tls: TLSContext, accounts: [(Handle, SigningKey)]) {
        guard let pin = PublicKeyFingerprint(try initialise()) else { throw FaultRunError("relay init printed no fingerprint") }
        let tls = try TLSContext(
            configuration: .client(
                trust: .pinnedPublicKeys([pin]),
                applicationProtocols: [RelayTransport.applicationProtocol]
            )
        )
        var enrolled: [(Handle, SigningKey, EnrollmentCode)] = []
        for name in names {
            let printed = try enroll(name)
            guard let code = EnrollmentCode(printed) else { throw FaultRunError("relay enroll printed no code: \(printed)") }
            enrolled.append((try Handle(name), SigningKey(), code))
        }
        try await start()
        for (handle, key, code) in enrolled {
            let connection = try await RelayConnection.open(host: "127.0.0.1", port: port, tls: tls)
            do {
                try await connection.register(handle, identity: key, enrollmentCode: code)
            } catch {
                await connection.close()
                throw error
            }
            await connection.close()
        }
        return (tls, enrolled.map { ($0.0, $0.1) })
    }

    /// A graceful stop for the end of a run.
    ///
    /// - Throws: `FaultRunError` if the relay has not exited 20 s after SIGTERM (it is then killed with SIGKILL).
    func stopGracefully() async throws {
        guard await terminate(within: .seconds(20)) else {
            throw FaultRunError("the relay in \(dataDirectory) did not stop within 20 s of SIGTERM (killed)")
        }
    }

    /// `PRAGMA integrity_check` of a SQLite store while the relay is down: "ok" or SQLite's list of problems.
    func integrityCheck() throws -> String {
        let queue = try DatabaseQueue(path: storePath)
        defer { try? queue.close() }
        let lines = try queue.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") }
        return lines.joined(separator: "; ")
    }
}

struct FaultRunError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
