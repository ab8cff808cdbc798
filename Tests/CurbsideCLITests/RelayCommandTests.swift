import CurbsideClient
import CurbsideTLS
import CurbsideTransport
import CurbsideWire
import Foundation
import Testing

@testable import CurbsideCLI

/// Runs the built `curbside` executable.
enum Executable {
    static var url: URL {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: directory.appendingPathComponent("curbside").path),
            directory.pathComponents.count > 1
        {
            directory.deleteLastPathComponent()
        }
        return directory.appendingPathComponent("curbside")
    }

    static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = url
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, stdout, stderr)
    }
}

@Suite("curbside relay commands", .serialized)
struct RelayCommandTests {
    func temporaryDirectory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("curbside-cli-\(UUID())").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test func initEnrollStatus() throws {
        let base = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let data = "\(base)/relay"
        let created = try Executable.run(["relay", "init", "--data", data, "--listen", "127.0.0.1:0"])
        #expect(created.status == 0, "\(created.stderr)")
        let keyMode = try FileManager.default.attributesOfItem(atPath: "\(data)/tls-key.pem")[.posixPermissions] as? Int
        #expect(keyMode == 0o600)
        let directoryMode = try FileManager.default.attributesOfItem(atPath: data)[.posixPermissions] as? Int
        #expect(directoryMode == 0o700)
        let certificate = try TLSCertificate(pemFile: "\(data)/tls-certificate.pem")
        let printed = try #require(created.stdout.split(separator: "\n").first { $0.hasPrefix("fingerprint") })
        #expect(printed.hasSuffix(String(certificate.publicKeyFingerprint.description.dropFirst(7))))

        let again = try Executable.run(["relay", "init", "--data", data])
        #expect(again.status == ExitStatus.usage)
        #expect(again.stderr.hasPrefix("curbside: error: \(data) already holds a relay"))
        #expect(again.stderr.contains("curbside: hint: "))

        let enrolled = try Executable.run(["relay", "enroll", "--data", data, "osei.derm"])
        #expect(enrolled.status == 0)
        #expect(enrolled.stdout.contains(/enrollment code for osei.derm: [0-9A-Z]{5}-[0-9A-Z]{5}-[0-9A-Z]{5}-[0-9A-Z]{5}/))
        let badHandle = try Executable.run(["relay", "enroll", "--data", data, "Osei"])
        #expect(badHandle.status != 0 && badHandle.stderr.contains("not a valid handle"))

        let status = try Executable.run(["relay", "status", "--data", data])
        #expect(status.status == 0)
        #expect(status.stdout.contains("accounts           0"))
        #expect(status.stdout.contains("pending enrolments 1"))
    }

    /// Starts `relay serve --data data`, logging to `log`, and waits for the port it reports.
    func serveRelay(data: String, log: String, environment: [String: String] = [:]) async throws -> (Process, Int) {
        let serve = Process()
        serve.executableURL = Executable.url
        serve.arguments = ["relay", "serve", "--data", data]
        serve.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        serve.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        serve.standardOutput = FileHandle.nullDevice
        try serve.run()
        var port: Int?
        for _ in 0..<400 where port == nil {
            try await Task.sleep(for: .milliseconds(50))
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            if let match = text.firstMatch(of: /listening on 127\.0\.0\.1:(\d+)/) { port = Int(match.output.1) }
        }
        guard let port else {
            serve.terminate()
            throw CLIError("relay serve did not report its port")
        }
        return (serve, port)
    }

    /// `relay init` into a directory that exists and is world-readable makes it 0700, and every file the relay
    /// writes, there or below, is 0600: settings, key, certificate, the store and its -wal and -shm files while it
    /// serves (issue 14 item 13).
    @Test func theDataDirectoryIsPrivateEvenWhenItExistedBefore() async throws {
        let base = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let data = "\(base)/relay"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        let created = try Executable.run(["relay", "init", "--data", data, "--listen", "127.0.0.1:0"])
        #expect(created.status == 0, "\(created.stderr)")

        /// Every entry below `data` with its mode, and those that are not 0700 (directories) or 0600 (files).
        func modes() throws -> (all: [String: Int], wrong: [String: Int]) {
            var modes: [String: Int] = [:]
            let files = FileManager.default.enumerator(atPath: data)
            while let name = files?.nextObject() as? String {
                modes[name] = try FileManager.default.attributesOfItem(atPath: "\(data)/\(name)")[.posixPermissions] as? Int
            }
            return (modes, modes.filter { $0.value != (FileManager.default.isDirectory("\(data)/\($0.key)") ? 0o700 : 0o600) })
        }
        #expect(try FileManager.default.attributesOfItem(atPath: data)[.posixPermissions] as? Int == 0o700)
        let afterInit = try modes()
        #expect(afterInit.all.keys.contains("relay.sqlite") && afterInit.all.keys.contains("relay.conf"))
        #expect(afterInit.wrong.isEmpty, "\(afterInit.all)")

        // An operator loosened the directory; serving tightens it again, and the store's log files are private.
        chmod(data, 0o755)
        let (serve, _) = try await serveRelay(data: data, log: "\(base)/serve.log")
        defer { if serve.isRunning { serve.terminate() } }
        #expect(try FileManager.default.attributesOfItem(atPath: data)[.posixPermissions] as? Int == 0o700)
        let serving = try modes()
        #expect(serving.all.keys.contains("relay.sqlite-wal") && serving.all.keys.contains("relay.sqlite-shm"), "\(serving.all)")
        #expect(serving.wrong.isEmpty, "\(serving.all)")
    }

    /// `relay serve` answers openssl s_client's malformed frame with an error frame and stops cleanly on SIGTERM.
    @Test func serveAnswersMalformedFramesAndStopsOnSIGTERM() async throws {
        let base = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let data = "\(base)/relay"
        let created = try Executable.run(["relay", "init", "--data", data, "--listen", "127.0.0.1:0"])
        #expect(created.status == 0)
        let fingerprintLine = try #require(created.stdout.split(separator: "\n").first { $0.hasPrefix("fingerprint") })
        let pin = try #require(PublicKeyFingerprint(String(fingerprintLine.split(separator: " ").last ?? "")))

        let log = "\(base)/serve.log"
        let (serve, relayPort) = try await serveRelay(data: data, log: log)
        defer { if serve.isRunning { serve.terminate() } }

        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/bin/sh")
        probe.arguments = [
            "-c",
            "(printf '\\000\\000\\000\\001'; sleep 1) | timeout 10 openssl s_client -connect 127.0.0.1:\(relayPort) "
                + "-tls1_3 -alpn curbside/1 -quiet 2>/dev/null | od -An -tx1 | tr -d ' \\n'",
        ]
        let out = Pipe()
        probe.standardOutput = out
        probe.standardInput = FileHandle.nullDevice
        try probe.run()
        let bytes = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        probe.waitUntilExit()
        #expect(bytes.contains("000200000000"), "challenge: \(bytes)")
        #expect(bytes.contains("00010000000001f5"), "error frame 501: \(bytes)")

        // The relay keeps serving a well-behaved client on another connection: the operator enrolls a provider
        // while it runs, and the client registers, publishes prekeys and fetches its own bundle.
        let enrolled = try Executable.run(["relay", "enroll", "--data", data, "osei.derm"])
        let codeText = try #require(enrolled.stdout.firstMatch(of: /[0-9A-Z]{5}-[0-9A-Z]{5}-[0-9A-Z]{5}-[0-9A-Z]{5}/)).output
        // As printed, dashes included: the code type normalises what a person would copy.
        let code = try #require(EnrollmentCode(String(codeText)))
        let tls = try TLSContext(configuration: .client(trust: .pinnedPublicKeys([pin]), applicationProtocols: [RelayTransport.applicationProtocol]))
        let client = try await RelayConnection.open(host: "127.0.0.1", port: relayPort, tls: tls)
        let derm = (handle: try Handle("osei.derm"), key: SigningKey())
        try await client.register(derm.handle, identity: derm.key, enrollmentCode: code)
        let signed = SignedPrekey(
            id: 1,
            publicKey: AgreementKey.Private().publicKey,
            expiresAt: Timestamp.now().adding(seconds: 30 * 86_400),
            signedBy: derm.key
        )
        let oneTime = OneTimePrekey(id: 100, publicKey: AgreementKey.Private().publicKey, signedBy: derm.key)
        let published = try await client.request(.publishPrekeys(try PrekeyUpload(signedPrekey: signed, oneTimePrekeys: [oneTime])))
        #expect(published == .prekeysPublished(oneTimePrekeysHeld: 1))
        guard case .bundle(let bundle) = try await client.request(.fetchBundle(derm.handle)) else {
            Issue.record("no bundle")
            return
        }
        try bundle.verify(now: .now(), expecting: Party(identityKey: derm.key.verifyingKey, handle: derm.handle))
        #expect(bundle.oneTimePrekey == oneTime)
        await client.close()
        let status = try Executable.run(["relay", "status", "--data", data])
        #expect(status.stdout.contains("accounts           1"), "relay status works while the relay runs: \(status.stdout)")

        kill(serve.processIdentifier, SIGTERM)
        for _ in 0..<100 where serve.isRunning { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!serve.isRunning)
        #expect(serve.terminationStatus == 0)
        let text = try String(contentsOfFile: log, encoding: .utf8)
        #expect(text.contains("stopping") && text.contains("stopped"))
        // One line per connection opened and closed, the registration; never the enrollment code.
        #expect(text.contains(/curbside relay: connection opened connection=[0-9a-f]{8} peer=127\.0\.0\.1\n/), "\(text)")
        #expect(text.contains(/connection closed connection=[0-9a-f]{8} duration=[0-9.]+s peer=127\.0\.0\.1 reason=malformed_frame/))
        #expect(text.contains(/registration accepted connection=[0-9a-f]{8} handle=osei\.derm peer=127\.0\.0\.1/))
        #expect(text.contains(/connection closed connection=[0-9a-f]{8} duration=[0-9.]+s handle=osei\.derm peer=127\.0\.0\.1/))
        #expect(!text.contains(String(codeText)) && !text.contains(String(codeText).replacingOccurrences(of: "-", with: "")))
    }
}

extension FileManager {
    func isDirectory(_ path: String) -> Bool {
        var directory: ObjCBool = false
        return fileExists(atPath: path, isDirectory: &directory) && directory.boolValue
    }
}
