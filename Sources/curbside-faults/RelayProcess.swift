import CurbsideClient
import CurbsideTLS
import CurbsideTransport
import CurbsideWire
import Foundation
import GRDB

/// A `curbside relay serve` child process on loopback, over one data directory that outlives it: started,
/// killed with SIGKILL, checked and started again.
final class RelayProcess: @unchecked Sendable {
    let executable: String
    let dataDirectory: String
    /// `sqlite`, or the PostgreSQL URL `relay init --database` writes into relay.conf.
    let database: String
    private(set) var port = 0
    private var process: Process?
    private var starts = 0

    init(executable: String, dataDirectory: String, database: String = "sqlite") {
        self.executable = executable
        self.dataDirectory = dataDirectory
        self.database = database
    }

    var storePath: String { "\(dataDirectory)/relay.sqlite" }
    var certificatePath: String { "\(dataDirectory)/tls-certificate.pem" }
    var privateKeyPath: String { "\(dataDirectory)/tls-key.pem" }

    /// `relay init` on loopback with a port chosen at each start; returns the pin clients use.
    func initialise() throws -> PublicKeyFingerprint {
        var arguments = ["relay", "init", "--data", dataDirectory, "--listen", "127.0.0.1:0"]
        if database != "sqlite" { arguments += ["--database", database] }
        let result = try Self.run(executable, arguments)
        guard result.status == 0 else { throw FaultRunError("relay init failed: \(result.output)") }
        return try TLSCertificate(pemFile: certificatePath).publicKeyFingerprint
    }

    /// `relay init`, then `other`'s TLS key and certificate copied over this relay's own: relay processes that share
    /// one database present one identity, so a client's pin holds whichever it reaches.
    func initialise(sharingIdentityOf other: RelayProcess) throws {
        _ = try initialise()
        for (source, destination) in [(other.certificatePath, certificatePath), (other.privateKeyPath, privateKeyPath)] {
            try FileManager.default.removeItem(atPath: destination)
            try FileManager.default.copyItem(atPath: source, toPath: destination)
        }
    }

    /// An enrollment code for `handle` from `relay enroll` (the relay may be running).
    func enroll(_ handle: String) throws -> String {
        let result = try Self.run(executable, ["relay", "enroll", "--data", dataDirectory, handle])
        guard result.status == 0, let code = result.output.split(separator: "\n").first?.split(separator: " ").last else {
            throw FaultRunError("relay enroll \(handle) failed: \(result.output)")
        }
        return String(code)
    }

    /// `relay init`, `relay enroll` for each of `names`, `relay serve`, and each account registered with a fresh key
    /// over TLS: the client context that pins this relay, and the accounts in the order of `names`.
    func startWithAccounts(_ names: [String]) async throws -> (tls: TLSContext, accounts: [(Handle, SigningKey)]) {
        let pin = try initialise()
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
        try start()
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

    /// Starts the relay and waits until it listens (at most 30 s).
    func start(environment: [String: String] = [:]) throws {
        starts += 1
        let logPath = "\(dataDirectory)/serve-\(starts).log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["relay", "serve", "--data", dataDirectory]
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = log
        process.standardError = log
        try process.run()
        try log.close()
        self.process = process
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            if let range = text.range(of: "listening on 127.0.0.1:") {
                let digits = text[range.upperBound...].prefix { $0.isNumber }
                if let port = Int(digits) {
                    self.port = port
                    return
                }
            }
            guard process.isRunning else { throw FaultRunError("the relay exited at start: \(text)") }
            usleep(10_000)
        }
        throw FaultRunError("the relay did not listen within 30 s")
    }

    var isRunning: Bool { process?.isRunning ?? false }

    /// The relay's resident memory (VmRSS), or 0 when it is not running.
    var residentKiB: Int {
        guard let process, process.isRunning,
            let status = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        else { return 0 }
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
    }

    /// SIGSTOP: the relay keeps its state but does nothing more, as at a power cut.
    func pause() {
        guard let process, process.isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGSTOP)
    }

    /// SIGKILL: no graceful stop, no flush, no answer to anything in flight.
    func kill() {
        guard let process, process.isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        self.process = nil
    }

    /// A graceful stop (SIGTERM), for the end of a run.
    ///
    /// - Throws: `FaultRunError` if the relay has not exited 20 s later (its shutdown grace period is 10 s); it is then
    ///   killed with SIGKILL.
    func stop() throws {
        guard let process, process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(20)
        while process.isRunning, Date() < deadline { usleep(10_000) }
        let hung = process.isRunning
        kill()
        self.process = nil
        if hung { throw FaultRunError("the relay in \(dataDirectory) did not stop within 20 s of SIGTERM (killed)") }
    }

    /// `PRAGMA integrity_check` of a SQLite store while the relay is down: "ok" or SQLite's list of problems.
    func integrityCheck() throws -> String {
        let queue = try DatabaseQueue(path: storePath)
        defer { try? queue.close() }
        let lines = try queue.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") }
        return lines.joined(separator: "; ")
    }

    static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }
}

struct FaultRunError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
