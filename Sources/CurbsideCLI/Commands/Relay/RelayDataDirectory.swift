import CurbsideRelay
import CurbsideTLS
import Foundation
import Logging

/// The files of one relay: configuration, TLS certificate and key, and the store.
struct RelayDataDirectory {
    let path: String

    var configurationPath: String { "\(path)/relay.conf" }
    var certificatePath: String { "\(path)/tls-certificate.pem" }
    var privateKeyPath: String { "\(path)/tls-key.pem" }
    var storePath: String { "\(path)/relay.sqlite" }
    var attachmentsPath: String { "\(path)/attachments" }

    /// Makes the directory and everything in it private to the relay's user, whatever their modes were (a directory
    /// that existed before `relay init`, an operator's chmod): 0700 for directories, 0600 for files; links are left
    /// alone, not followed. Sets the process's umask to 077 first, so every file the relay creates from here on
    /// (SQLite's -wal and -shm files, attachment files, keys) starts private too.
    ///
    /// - Throws: `CLIError` naming the path whose mode could not be set.
    func makePrivate() throws {
        umask(0o077)
        try Self.setMode(path, 0o700)
        let entries = FileManager.default.enumerator(atPath: path)
        while let name = entries?.nextObject() as? String {
            let entry = "\(path)/\(name)"
            var info = stat()
            guard lstat(entry, &info) == 0 else { continue }
            switch info.st_mode & S_IFMT {
            case S_IFDIR: try Self.setMode(entry, 0o700)
            case S_IFREG: try Self.setMode(entry, 0o600)
            default: continue
            }
        }
    }

    private static func setMode(_ path: String, _ mode: mode_t) throws {
        guard chmod(path, mode) == 0 else {
            throw CLIError("cannot make \(path) private (mode \(String(mode, radix: 8))): \(String(cString: strerror(errno)))")
        }
    }

    /// The relay's store as relay.conf names it, for an operator's command that runs beside `relay serve` (which
    /// sees what the command changes: both read the same file or database); logs nothing.
    func openStore() async throws -> (store: any RelayStore, attachments: any AttachmentStorage) {
        let settings = try readSettings()
        try makePrivate()
        return try await settings.openStore(logger: Logger(label: "curbside.relay") { _ in SwiftLogNoOpLogHandler() })
    }

    /// The fingerprint clients pin: SHA-256 of the certificate's public key, 64 hex digits, as `relay init` prints it.
    func certificateFingerprint() throws -> String {
        do {
            return String(try TLSCertificate(pemFile: certificatePath).publicKeyFingerprint.description.dropFirst("sha256:".count))
        } catch {
            throw CLIError(
                "cannot read the relay's certificate \(certificatePath): \(error)",
                hint: "`curbside relay init` writes it; restore it from a backup if it was removed",
                exitStatus: ExitStatus.configuration
            )
        }
    }

    /// relay.conf with the `CURBSIDE_RELAY_*` variables of `environment` over it.
    ///
    /// - Throws: `RelaySettingsError` with every problem found; `CLIError` when there is no relay.conf.
    func readSettings(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> RelaySettings {
        let (settings, problems) = try readSettingsCollectingProblems(environment: environment)
        guard problems.isEmpty else { throw RelaySettingsError(file: configurationPath, problems: problems) }
        return settings
    }

    /// As `readSettings`, but returns the problems with what could be read, for check-config.
    func readSettingsCollectingProblems(
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> (settings: RelaySettings, problems: [RelaySettingsProblem]) {
        guard let text = try? String(contentsOfFile: configurationPath, encoding: .utf8) else {
            throw CLIError(
                "\(path) is not a relay data directory (no readable relay.conf)",
                hint: "create one with `curbside relay init --data \(path)`",
                exitStatus: ExitStatus.configuration
            )
        }
        return RelaySettings.read(text: text, path: configurationPath, environment: environment, dataDirectory: path)
    }
}
