import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A `curbside relay serve` child process on loopback over one data directory that outlives it: initialised,
/// started, stopped, killed or paused, and started again on the same port. The CLI tests and the fault runs
/// (curbside-faults) both drive their relays through it.
public final class RelayProcess: @unchecked Sendable {
    // Touched only by the task that drives the relay.
    public let executable: String
    public let dataDirectory: String
    /// `sqlite`, or the PostgreSQL URL `relay init --database` writes into relay.conf.
    public let database: String
    /// Where the relay listens; chosen at the first start (below the ephemeral range, LoopbackPort) and kept.
    public private(set) var port = 0
    /// The SHA-256 of the relay certificate's public key, as `relay init` printed it (64 hex digits).
    public private(set) var fingerprint = ""
    private var process: Process?
    private var starts = 0

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    public init(executable: String, dataDirectory: String, database: String = "sqlite") {
        self.executable = executable
        self.dataDirectory = dataDirectory
        self.database = database
    }

    public var storePath: String { "\(dataDirectory)/relay.sqlite" }
    public var certificatePath: String { "\(dataDirectory)/tls-certificate.pem" }
    public var privateKeyPath: String { "\(dataDirectory)/tls-key.pem" }
    /// The log of the latest start (standard output and error).
    public var logPath: String { "\(dataDirectory)/serve-\(starts).log" }

    /// `relay init` on loopback; returns the certificate's fingerprint (also in `fingerprint`).
    @discardableResult
    public func initialise() throws -> String {
        var arguments = ["relay", "init", "--data", dataDirectory, "--listen", "127.0.0.1:0"]
        if database != "sqlite" { arguments += ["--database", database] }
        let result = try Self.run(executable, arguments)
        guard result.status == 0, let match = result.output.firstMatch(of: /fingerprint +([0-9a-f]{64})/) else {
            throw Failure("relay init failed: \(result.output)")
        }
        fingerprint = String(match.output.1)
        return fingerprint
    }

    /// `relay init`, then `other`'s TLS key and certificate copied over this relay's own: relay processes that share
    /// one database present one identity, so a client's pin holds whichever it reaches.
    public func initialise(sharingIdentityOf other: RelayProcess) throws {
        try initialise()
        for (source, destination) in [(other.certificatePath, certificatePath), (other.privateKeyPath, privateKeyPath)] {
            try FileManager.default.removeItem(atPath: destination)
            try FileManager.default.copyItem(atPath: source, toPath: destination)
        }
        fingerprint = other.fingerprint
    }

    /// An enrollment code for `handle` from `relay enroll` (the relay may be running).
    public func enroll(_ handle: String) throws -> String {
        let result = try Self.run(executable, ["relay", "enroll", "--data", dataDirectory, handle])
        guard result.status == 0, let match = result.output.firstMatch(of: /[0-9A-Z]{5}-[0-9A-Z]{5}-[0-9A-Z]{5}-[0-9A-Z]{5}/) else {
            throw Failure("relay enroll \(handle) failed: \(result.output)")
        }
        return String(match.output)
    }

    /// Starts the relay and waits until it listens (at most 30 s).
    public func start(environment: [String: String] = [:]) async throws {
        if port == 0 { port = try LoopbackPort.free() }
        starts += 1
        let logPath = self.logPath
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["relay", "serve", "--data", dataDirectory, "--listen", "127.0.0.1:\(port)"]
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = log
        process.standardError = log
        try process.run()
        try log.close()
        self.process = process
        for _ in 0..<3000 {
            let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            if text.contains("listening on 127.0.0.1:\(port)") { return }
            guard process.isRunning else { throw Failure("the relay exited at start: \(text)") }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw Failure("the relay did not listen within 30 s: \((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "")")
    }

    public var isRunning: Bool { process?.isRunning ?? false }

    /// The relay's resident memory (VmRSS), or 0 when it is not running.
    public var residentKiB: Int {
        guard let process, process.isRunning,
            let status = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        else { return 0 }
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
    }

    /// SIGSTOP: the relay keeps its state but does nothing more, as at a power cut. Returns once it has stopped
    /// (a signal is delivered after `kill` returns, and a relay on another core could write one more chunk).
    public func pause() {
        guard let process, process.isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGSTOP)
        for _ in 0..<2000 where !Self.isStopped(process.processIdentifier) { usleep(1_000) }
    }

    /// Whether the process is stopped by a signal (state T in /proc/PID/stat).
    static func isStopped(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        return stat[stat.index(after: close)...].split(separator: " ").first == "T"
    }

    /// Sends `signal` to the relay; after SIGSTOP, waits until it has stopped (`pause`), after SIGKILL until it is
    /// gone (it is not restarted).
    public func send(_ signal: Int32) async {
        guard let process, process.isRunning else { return }
        if signal == SIGSTOP { return pause() }
        Glibc.kill(process.processIdentifier, signal)
        guard signal == SIGKILL else { return }
        for _ in 0..<2000 where process.isRunning { try? await Task.sleep(for: .milliseconds(5)) }
        self.process = nil
    }

    /// SIGKILL, and waits until the process is gone: no graceful stop, no flush, no answer to anything in flight.
    public func kill() {
        guard let process, process.isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        // Polled, not waitUntilExit: Foundation's wait can hang when called from a task.
        for _ in 0..<2000 where process.isRunning { usleep(5_000) }
        self.process = nil
    }

    /// A graceful stop (SIGTERM); killed with SIGKILL if it has not exited `within` (the relay's shutdown grace period
    /// is 10 s). Returns whether it stopped by itself.
    @discardableResult
    public func terminate(within patience: Duration = .seconds(20)) async -> Bool {
        guard let process, process.isRunning else { return true }
        Glibc.kill(process.processIdentifier, SIGTERM)
        let deadline = ContinuousClock.now + patience
        while process.isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(10)) }
        let stopped = !process.isRunning
        kill()
        self.process = nil
        return stopped
    }

    /// Runs `executable` with `arguments` to its end; its standard output and error together.
    public static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
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

extension RelayProcess: StoppableFixture {
    public func stop() async { await terminate() }
}
