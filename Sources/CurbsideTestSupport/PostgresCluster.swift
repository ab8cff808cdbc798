import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A throw-away PostgreSQL cluster for tests and fault runs: `initdb` in a temporary directory, a server on a Unix
/// socket there and a loopback port, stopped by `stop()` or, should the process that started it die first, by a
/// watchdog that notices within a second. PostgreSQL refuses to run as root, so as root it runs as the `postgres`
/// user (Debian's package creates it), or `nobody`.
///
/// Nothing here is started by hand and nothing outlives the run: the data directory is deleted when it stops.
public final class PostgresCluster: @unchecked Sendable {
    public enum Failure: Error, CustomStringConvertible {
        case notInstalled
        case command(String, status: Int32, output: String)

        public var description: String {
            switch self {
            case .notInstalled: "PostgreSQL's server programs are not installed (`make deps` installs Debian's postgresql)"
            case .command(let command, let status, let output): "\(command) exited \(status): \(output)"
            }
        }
    }

    /// The cluster's directory (data, socket, log).
    public let directory: String
    public let port: Int
    public let binDirectory: String
    /// The user the server runs as and connects as (trust authentication; loopback and socket only).
    public let user: String
    private let runAs: String?
    private var watchdog: Process?
    private var stopped = false

    public var dataDirectory: String { "\(directory)/data" }
    public var socketDirectory: String { directory }
    /// The Unix socket a client connects to.
    public var unixSocketPath: String { "\(directory)/.s.PGSQL.\(port)" }
    public var logPath: String { "\(directory)/server.log" }

    private init(directory: String, port: Int, binDirectory: String, user: String, runAs: String?) {
        self.directory = directory
        self.port = port
        self.binDirectory = binDirectory
        self.user = user
        self.runAs = runAs
    }

    /// The directory of `initdb`, `pg_ctl` and `postgres`: Debian keeps them per version under /usr/lib/postgresql.
    public static func findBinDirectory() -> String? {
        if let configured = ProcessInfo.processInfo.environment["CURBSIDE_PG_BIN"] { return configured }
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [])
            .compactMap(Int.init).sorted(by: >)
        for version in versions where FileManager.default.isExecutableFile(atPath: "\(root)/\(version)/bin/initdb") {
            return "\(root)/\(version)/bin"
        }
        return nil
    }

    /// Creates and starts a cluster. `settings` are extra `postgresql.conf` lines (`name = value`).
    public static func start(settings: [String: String] = [:], name: String = "pg") throws -> PostgresCluster {
        let cluster = try create(name: name)
        try cluster.run(cluster.binDirectory + "/initdb", ["-D", cluster.dataDirectory, "-U", cluster.user, "-A", "trust", "-E", "UTF8", "--no-instructions"])
        try cluster.configure(settings)
        try cluster.startServer()
        return cluster
    }

    /// A streaming-replication standby of `primary`, started: a base backup with `-R` (standby.signal and
    /// primary_conninfo written), named `name` in the primary's synchronous_standby_names if the primary lists it.
    ///
    /// The base backup copies the primary's settings, but not its `synchronous_standby_names` unless `settings` name
    /// one: promoted, the standby would otherwise wait at every commit for a standby of its own that does not exist.
    public static func standby(of primary: PostgresCluster, name: String = "standby", settings: [String: String] = [:]) throws
        -> PostgresCluster
    {
        var settings = settings
        if settings["synchronous_standby_names"] == nil { settings["synchronous_standby_names"] = "''" }
        let cluster = try create(name: name)
        try cluster.run(
            cluster.binDirectory + "/pg_basebackup",
            // A fast checkpoint: the default spreads the backup's checkpoint over minutes.
            ["-h", primary.socketDirectory, "-p", String(primary.port), "-U", primary.user, "-D", cluster.dataDirectory, "-R", "-X", "stream",
             "-c", "fast", "-d", "application_name=\(name)"]
        )
        try cluster.configure(settings)
        try cluster.startServer()
        return cluster
    }

    private static func create(name: String) throws -> PostgresCluster {
        guard let bin = findBinDirectory() else { throw Failure.notInstalled }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("curbside-\(name)-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var runAs: String?
        var user = NSUserName()
        if getuid() == 0 {
            runAs = getpwnam("postgres") != nil ? "postgres" : "nobody"
            user = runAs!
            guard let entry = getpwnam(runAs!) else { throw Failure.command("getpwnam", status: 1, output: "no user \(runAs!)") }
            guard chown(directory, entry.pointee.pw_uid, entry.pointee.pw_gid) == 0 else {
                throw Failure.command("chown \(directory)", status: errno, output: String(cString: strerror(errno)))
            }
        }
        return PostgresCluster(directory: directory, port: try LoopbackPort.free(), binDirectory: bin, user: user, runAs: runAs)
    }

    private func configure(_ settings: [String: String]) throws {
        var lines = [
            "listen_addresses = '127.0.0.1'",
            "port = \(port)",
            "unix_socket_directories = '\(socketDirectory)'",
            "max_connections = 200",
            "wal_level = replica",
            "max_wal_senders = 10",
            "hot_standby = on",
            "logging_collector = off",
        ]
        for (key, value) in settings.sorted(by: { $0.key < $1.key }) { lines.append("\(key) = \(value)") }
        let file = "\(dataDirectory)/postgresql.auto.conf"
        let existing = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        try asUser { try (existing + "\n" + lines.joined(separator: "\n") + "\n").write(toFile: file, atomically: false, encoding: .utf8) }
    }

    private func startServer() throws {
        // Not through a pipe: the server it starts would hold the pipe open, and reading it would never end.
        try run(binDirectory + "/pg_ctl", ["-D", dataDirectory, "-l", logPath, "-w", "-t", "60", "start"], capture: false)
        startWatchdog()
    }

    /// Starts the server again after `stop` or `kill` (crash recovery runs if it was killed).
    public func restart() throws {
        stopped = false
        try startServer()
    }

    /// Stops the server (`fast`: connections are closed, the checkpoint written) and deletes the cluster.
    public func stop() {
        guard !stopped else { return }
        stopped = true
        watchdog?.terminate()
        _ = try? run(binDirectory + "/pg_ctl", ["-D", dataDirectory, "-m", "immediate", "-w", "stop"])
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// SIGKILL to the postmaster, as when its machine dies: nothing is flushed or closed. The cluster's files stay.
    public func killPostmaster() throws {
        let pidFile = try String(contentsOfFile: "\(dataDirectory)/postmaster.pid", encoding: .utf8)
        guard let pid = pidFile.split(separator: "\n").first.flatMap({ Int32($0) }) else {
            throw Failure.command("read postmaster.pid", status: 1, output: pidFile)
        }
        kill(pid, SIGKILL)
        // Its backends notice the postmaster is gone and exit. Dead is enough: a zombie waits for init to reap it,
        // which here can take a second that a failover measurement would count.
        for _ in 0..<500 where kill(pid, 0) == 0 && !Self.isZombie(pid) { usleep(10_000) }
    }

    /// Whether `pid` has exited and waits only to be reaped (state Z in /proc/PID/stat).
    private static func isZombie(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let afterName = stat.range(of: ") ", options: .backwards)
        else { return false }
        return stat[afterName.upperBound...].first == "Z"
    }

    /// Makes the standby named `name` this primary's synchronous standby and waits (at most 30 s) until it streams
    /// as one: from then on a commit returns only once the standby has flushed it. Called once the standby runs, since
    /// a primary that names a synchronous standby waits at every commit until one streams.
    public func requireSynchronousStandby(_ name: String = "standby") throws {
        try psql("ALTER SYSTEM SET synchronous_standby_names = '\(name)'")
        try psql("SELECT pg_reload_conf()")
        let deadline = Date().addingTimeInterval(30)
        var state = ""
        while Date() < deadline {
            state = try psql("SELECT sync_state FROM pg_stat_replication WHERE application_name = '\(name)'")
            if state == "sync" { return }
            usleep(50_000)
        }
        throw Failure.command("waiting for the synchronous standby \(name)", status: 1, output: "sync_state \"\(state)\" after 30 s")
    }

    /// Promotes a standby to a primary that accepts writes.
    public func promote() throws {
        try run(binDirectory + "/pg_ctl", ["-D", dataDirectory, "-w", "promote"])
    }

    /// Runs SQL through `psql` (unaligned, tuples only) and returns its output.
    @discardableResult
    public func psql(_ sql: String, database: String = "postgres") throws -> String {
        try run(
            binDirectory + "/psql",
            ["-h", socketDirectory, "-p", String(port), "-U", user, "-d", database, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql]
        )
    }

    /// Creates a database owned by the cluster's user.
    public func createDatabase(_ name: String) throws {
        try psql("CREATE DATABASE \"\(name)\"")
    }

    /// The last lines of the server's log, for a failure message.
    public func logTail(_ lines: Int = 20) -> String {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }

    deinit { stop() }

    /// A watchdog that stops the server once this process is gone, whatever way it ends.
    private func startWatchdog() {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        let stop = commandLine(binDirectory + "/pg_ctl", ["-D", dataDirectory, "-m", "immediate", "stop"])
        process.arguments = [
            "-c",
            "while kill -0 \(getpid()) 2>/dev/null; do sleep 1; done; \(stop) >/dev/null 2>&1; rm -rf '\(directory)'",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try? process.run()
        watchdog = process
    }

    private func commandLine(_ executable: String, _ arguments: [String]) -> String {
        let quoted = (["/usr/bin/env", "-C", directory, executable] + arguments)
            .map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        guard let runAs else { return quoted }
        return "runuser -u \(runAs) -- \(quoted)"
    }

    /// Has every descriptor above standard error closed in the child `actions` spawn, and only there. Otherwise the
    /// server `pg_ctl start` leaves running inherits whatever is open at that moment — a test relay's listening socket
    /// among them, which then cannot be bound again when that relay restarts on its port ("Address already in use").
    ///
    /// The parent's descriptors are left as they are: marking them all close-on-exec here, as this once did, raced
    /// with Foundation's `Process` on other threads, whose child must inherit one end of a socket pair that tells
    /// the parent when it exits. A child that lost it looked exited at once, and Foundation's monitor then waited in
    /// a blocking `waitpid` for a child that lives as long as the tests (the watchdog below): no `Process` was seen to
    /// exit after that, and every test waiting for one hung.
    private static func closeAbove2(in actions: inout posix_spawn_file_actions_t) {
        // glibc 2.34's posix_spawn_file_actions_addclosefrom_np, which Swift does not import (it is declared for
        // _GNU_SOURCE only); looked up by name, as the relay looks up mallopt.
        if let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") {  // nil: RTLD_DEFAULT
            typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
            if unsafeBitCast(symbol, to: CloseFrom.self)(&actions, 3) == 0 { return }
        }
        // Older C libraries: each descriptor open now (one opened after this is not covered, a far rarer leak).
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return }
        for name in names {
            guard let fd = Int32(name), fd > 2 else { continue }
            posix_spawn_file_actions_addclose(&actions, fd)
        }
    }

    /// Runs a command to its end (as the server's user when root) with its output in a file, and returns the output.
    ///
    /// posix_spawn and waitpid rather than Foundation's Process: Process's wait hangs here when called from a task,
    /// and a pipe would be held open by the server `pg_ctl start` leaves running.
    @discardableResult
    private func run(_ executable: String, _ arguments: [String], capture: Bool = true) throws -> String {
        // In the cluster's directory, which the server's user owns: the caller's (a fresh clone under `mktemp -d`,
        // mode 0700) may be closed to it, and psql and pg_ctl then complain on every run.
        let argv = (runAs.map { ["/usr/sbin/runuser", "-u", $0, "--"] } ?? []) + ["/usr/bin/env", "-C", directory, executable] + arguments
        let id = UUID().uuidString.prefix(8)
        let outputPath = "\(directory)/command-\(id).out"
        let errorPath = "\(directory)/command-\(id).err"
        defer {
            unlink(outputPath)
            unlink(errorPath)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        // What a command prints is its answer (psql's rows); what it complains of goes apart, into a failure's text.
        posix_spawn_file_actions_addopen(&actions, 1, capture ? outputPath : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, capture ? errorPath : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        Self.closeAbove2(in: &actions)
        var pid: pid_t = 0
        let cArguments = argv.map { strdup($0) } + [nil]
        defer { for argument in cArguments { free(argument) } }
        let spawned = posix_spawn(&pid, argv[0], &actions, nil, cArguments, environ)
        guard spawned == 0 else {
            throw Failure.command(argv.joined(separator: " "), status: spawned, output: String(cString: strerror(spawned)))
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let text = capture ? ((try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "") : logTail()
        let exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        guard exitStatus == 0 else {
            let complaint = capture ? ((try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? "") : ""
            throw Failure.command(argv.joined(separator: " "), status: exitStatus, output: text + complaint)
        }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Writes a file as the server's user would own it (root writes it, then hands it over).
    private func asUser(_ write: () throws -> Void) throws {
        try write()
        if let runAs, let entry = getpwnam(runAs) {
            _ = chown("\(dataDirectory)/postgresql.auto.conf", entry.pointee.pw_uid, entry.pointee.pw_gid)
        }
    }
}
