import Foundation
import Glibc
import Testing

@testable import CurbsideCLI

/// relay.conf through the real binary: check-config, the environment over the file, `relay init --database`.
extension RelayCommandTests {
    /// Makes a relay listening on 127.0.0.1:0 in a new temporary directory; returns the base and the data directory.
    func initialisedRelay(_ extra: [String] = []) throws -> (base: String, data: String) {
        let base = try temporaryDirectory()
        let data = "\(base)/relay"
        let created = try Executable.run(["relay", "init", "--data", data, "--listen", "127.0.0.1:0"] + extra)
        #expect(created.status == 0, "\(created.stderr)")
        return (base, data)
    }

    func append(_ lines: String, to data: String) throws {
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(data)/relay.conf"))
        handle.seekToEndOfFile()
        handle.write(Data(lines.utf8))
        try handle.close()
    }

    /// A file with several mistakes gets them all reported in one run, each with file, line, key and what is wrong;
    /// serve refuses to start with the same report.
    @Test func checkConfigReportsEveryProblemAtOnce() throws {
        let (base, data) = try initialisedRelay()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let lines = try String(contentsOfFile: "\(data)/relay.conf", encoding: .utf8).split(
            separator: "\n",
            omittingEmptySubsequences: false
        ).count
        try append(
            "idle_timeout = 300\nmaximum_conections = 10\nmaximum_queued_bytes_per_account = 2 TiB x\n",
            to: data
        )

        let checked = try Executable.run(
            ["relay", "check-config", "--data", data],
            environment: ["CURBSIDE_RELAY_LOGIN_TIMEOUT": "0s"]
        )
        #expect(checked.status == 78)
        let conf = "\(data)/relay.conf"
        #expect(
            checked.stderr.split(separator: "\n").map(String.init) == [
                "curbside: error: \(conf):\(lines): idle_timeout: \"300\" needs a unit: ms, s, min, h or d (such as 300s)",
                "curbside: error: \(conf):\(lines + 1): maximum_conections: is not a setting; did you mean maximum_connections?",
                "curbside: error: \(conf):\(lines + 2): maximum_queued_bytes_per_account: \"2 TiB x\" is not a size such as 4 GiB",
                "curbside: error: CURBSIDE_RELAY_LOGIN_TIMEOUT: login_timeout: 0s is out of range: expected 1s to 1h",
                "curbside: hint: docs/relay-configuration.md describes every setting; a new relay's relay.conf lists them with their defaults",
            ],
            "\(checked.stderr)"
        )
        #expect(checked.stdout.isEmpty)

        let served = try Executable.run(["relay", "serve", "--data", data])
        #expect(served.status == 78)
        #expect(served.stderr.contains("\(conf):\(lines + 1): maximum_conections: is not a setting"))
        #expect(!served.stderr.contains("listening on"))
    }

    /// `CURBSIDE_RELAY_<KEY>` wins over relay.conf: check-config says so, and a running relay applies it (one
    /// connection per address: the second is refused, and the log says which limit refused it).
    @Test func environmentOverridesTheFile() async throws {
        let (base, data) = try initialisedRelay()
        defer { try? FileManager.default.removeItem(atPath: base) }
        try append("idle_timeout = 300s\nmaximum_connections_per_address = 8\n", to: data)
        let environment = ["CURBSIDE_RELAY_IDLE_TIMEOUT": "45s", "CURBSIDE_RELAY_MAXIMUM_CONNECTIONS_PER_ADDRESS": "1"]

        let checked = try Executable.run(["relay", "check-config", "--data", data], environment: environment)
        #expect(checked.status == 0, "\(checked.stderr)")
        #expect(checked.stdout.contains(/\nidle_timeout +45s +CURBSIDE_RELAY_IDLE_TIMEOUT\n/), "\(checked.stdout)")
        #expect(
            checked.stdout.contains(
                /\nmaximum_connections_per_address +1 +CURBSIDE_RELAY_MAXIMUM_CONNECTIONS_PER_ADDRESS\n/
            )
        )
        #expect(checked.stdout.contains(/\nlogin_timeout +30s +default\n/))

        let log = "\(base)/serve.log"
        let (serve, port) = try await serveRelay(data: data, log: log, environment: environment)
        defer { if serve.isRunning { serve.terminate() } }
        let first = try connect(port: port)
        defer { close(first) }
        try await Task.sleep(for: .milliseconds(200))
        let second = try connect(port: port)
        defer { close(second) }
        // The relay closes the second connection before any TLS: reading finds the end at once.
        var byte: UInt8 = 0
        #expect(read(second, &byte, 1) == 0)
        var text = ""
        for _ in 0..<100 where !text.contains("connection refused") {
            try await Task.sleep(for: .milliseconds(50))
            text = try String(contentsOfFile: log, encoding: .utf8)
        }
        #expect(
            text.contains("curbside relay: notice: connection refused limiter=connections peer=127.0.0.1"),
            "\(text)"
        )
    }

    /// A TCP connection to the relay on loopback, no TLS.
    func connect(port: Int) throws -> Int32 {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard socket >= 0, connected == 0 else { throw CLIError("cannot connect to 127.0.0.1:\(port)") }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return socket
    }

    /// `check-config --json`: the settings in effect with their sources and the password redacted; problems with
    /// file, line and key, and exit status 78.
    @Test func checkConfigJSON() throws {
        let (base, data) = try initialisedRelay()
        defer { try? FileManager.default.removeItem(atPath: base) }
        try append("database = postgres://relay@db1,db2:5433/curbside\n", to: data)
        let environment = ["CURBSIDE_RELAY_DATABASE_PASSWORD": "correct horse battery"]

        let fine = try Executable.run(["relay", "check-config", "--data", data, "--json"], environment: environment)
        #expect(fine.status == 0, "\(fine.stderr)")
        #expect(!fine.stdout.contains("horse"))
        let report = try #require(try JSONSerialization.jsonObject(with: Data(fine.stdout.utf8)) as? [String: Any])
        #expect(report["ok"] as? Bool == true)
        #expect((report["problems"] as? [Any])?.isEmpty == true)
        let settings = try #require(report["settings"] as? [String: [String: String]])
        #expect(settings.count == RelaySettingKey.all.count)
        #expect(settings["idle_timeout"] == ["value": "5min", "source": "default"])
        #expect(settings["database_password"] == ["value": "<redacted>", "source": "CURBSIDE_RELAY_DATABASE_PASSWORD"])
        #expect(settings["database"]?["value"] == "postgres://relay:<redacted>@db1:5432,db2:5433/curbside")
        #expect(settings["listen"]?["source"]?.hasPrefix("\(data)/relay.conf:") == true)

        try append("envelope_lifetime = forever\n", to: data)
        let bad = try Executable.run(["relay", "check-config", "--data", data, "--json"], environment: environment)
        #expect(bad.status == 78)
        let badReport = try #require(try JSONSerialization.jsonObject(with: Data(bad.stdout.utf8)) as? [String: Any])
        #expect(badReport["ok"] as? Bool == false)
        #expect(badReport["settings"] == nil)
        let problems = try #require(badReport["problems"] as? [[String: Any]])
        #expect(problems.count == 1)
        #expect(problems.first?["file"] as? String == "\(data)/relay.conf")
        #expect(problems.first?["key"] as? String == "envelope_lifetime")
        #expect(problems.first?["line"] as? Int != nil)
        #expect(problems.first?["message"] as? String == "\"forever\" is not a duration such as 300s")
    }

    /// `relay init --database postgres://…` writes the setting (and no SQLite store); the password stays out of the
    /// command line; serve, with no server at those hosts, says it cannot use the database and stops.
    @Test func initDatabaseWritesTheSetting() throws {
        let url = "postgres://relay@db1.example:5432,db2.example:5433/curbside?target_session_attrs=read-write"
        let (base, data) = try initialisedRelay(["--database", url])
        defer { try? FileManager.default.removeItem(atPath: base) }
        let conf = try String(contentsOfFile: "\(data)/relay.conf", encoding: .utf8)
        #expect(conf.contains("\ndatabase = \(url)\n"), "\(conf)")
        #expect(conf.contains("\n# database_password =\n"))
        #expect(conf.contains("\n# idle_timeout = 5min\n"))
        #expect(!FileManager.default.fileExists(atPath: "\(data)/relay.sqlite"))

        let checked = try Executable.run(["relay", "check-config", "--data", data])
        #expect(checked.status == 0, "\(checked.stderr)")
        #expect(checked.stdout.contains("database "))
        #expect(checked.stdout.contains(url))

        let served = try Executable.run(["relay", "serve", "--data", data])
        #expect(served.status == ExitStatus.network)
        #expect(served.stderr.contains("curbside: error: cannot use the database postgres://relay@db1.example:5432,db2.example:5433/curbside"), "\(served.stderr)")

        let withPassword = try Executable.run(
            ["relay", "init", "--data", "\(base)/other", "--database", "postgres://relay:hunter2@db/curbside"]
        )
        #expect(withPassword.status == 64)
        #expect(withPassword.stderr.contains("--database must not hold the password"))
        #expect(!withPassword.stderr.contains("hunter2"))
        #expect(!FileManager.default.fileExists(atPath: "\(base)/other"))

        let malformed = try Executable.run([
            "relay", "init", "--data", "\(base)/other", "--database", "postgres://relay@db:70000/x",
        ])
        #expect(malformed.status == 64)
        #expect(
            malformed.stderr.contains("--database: postgres URL host 1 (db) has port \"70000\"; expected 1 to 65535")
        )
    }
}
