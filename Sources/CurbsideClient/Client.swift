import CurbsideTLS
import CurbsideTransport
import CurbsideWire
import Foundation
import GRDB
import Logging
import Synchronization

/// A provider's Curbside profile: its identity, contacts, consults and the relay it uses.
///
/// Everything a clinician does goes through here: ``create(home:handle:relay:enrollmentCode:passphrase:limits:logger:)``
/// once, then ``open(home:passphrase:logger:)`` for each session. Work that needs the relay (sending, fetching,
/// receipts, prekey upkeep) happens in ``sync()``, which every sending call also runs; when the relay cannot be
/// reached, outgoing messages wait in the outbox with their message ids and go out on the next sync.
///
/// The profile directory holds `identity.json` (the identity key and storage key, sealed with the passphrase through
/// Argon2id) and `profile.sqlite`; the directory is 0700 and its files 0600.
public actor Client {
    /// This profile's handle and identity key.
    public nonisolated let me: Party
    /// The relay this profile is registered on, with its pinned key.
    public nonisolated let relay: RelayEndpoint
    /// The profile directory.
    public nonisolated let home: URL
    nonisolated let identity: SigningKey
    nonisolated let database: ProfileDatabase
    nonisolated let logger: Logger
    nonisolated let tls: TLSContext
    /// The connection of the current sync or watch, if any.
    var connection: RelayConnection?
    /// When the relay last refused the bound login, read from the profile at the first connection.
    var boundLoginRefusal = BoundLoginRefusalState.unread
    /// Called as attachment bytes move.
    nonisolated let progressHandler = Mutex<(@Sendable (TransferProgress) -> Void)?>(nil)
    /// Counts transfer progress reports, so a retry loop can tell a drop after progress from one without.
    nonisolated let transferred = Mutex<UInt64>(0)
    /// Called when a queued message leaves the outbox (the relay stored it).
    nonisolated let sentHandler = Mutex<(@Sendable (OutboxItem) -> Void)?>(nil)
    /// Set by ``stopSending()``: from then on this client queues nothing and sends no message to the relay.
    nonisolated let sendingStopped = Mutex<Bool>(false)
    /// Reconnections after a connection drops part-way through a sync.
    var retryLimit = 5
    /// Attachments of at least this many bytes are uploaded while they are encrypted (`prepareAttachments`); smaller
    /// ones take longer to connect for than to encrypt.
    var uploadWhileEncryptingFrom: UInt64 = 8 << 20
    /// Uploads begun while their files were encrypted, by provisional id, until the flush that sends their message
    /// takes their outcome (`uploadedDescriptors`).
    var earlyUploads: [[UInt8]: Task<EarlyUpload, Never>] = [:]
    /// What incoming attachments may make this device download.
    var attachmentLimits = AttachmentLimits.standard
    /// A sync or watch step is running; others wait (see `exclusively`).
    var busy = false
    var busyWaiters: [CheckedContinuation<Void, Never>] = []
    /// How far `watch` has reported the profile's activity.
    var watchCursor = ActivityCursor(messageRow: 0, eventSeq: 0)

    /// How long a signed prekey is valid, and how often it is replaced.
    static let signedPrekeyLifetime: UInt64 = 30 * 86_400
    static let signedPrekeyRotation: UInt64 = 7 * 86_400
    /// A replaced signed prekey is kept this long, for envelopes sealed to it before senders saw the new one, plus
    /// the relay's envelope lifetime (an envelope sealed at the end of the grace may wait that long).
    static let signedPrekeyGrace: UInt64 = 14 * 86_400
    static let relayEnvelopeLifetime: UInt64 = 14 * 86_400
    /// One-time prekeys the client keeps on the relay.
    static let oneTimePrekeyTarget = 100

    init(me: Party, relay: RelayEndpoint, home: URL, identity: SigningKey, database: ProfileDatabase, logger: Logger) throws {
        self.me = me
        self.relay = relay
        self.home = home
        self.identity = identity
        self.database = database
        self.logger = logger
        tls = try relay.pinnedTLSContext()
    }

    /// The profile directory: `explicit`, else `$CURBSIDE_HOME`, else `~/.curbside`.
    public static func home(explicit: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        if let explicit { return URL(fileURLWithPath: explicit) }
        if let fromEnvironment = environment["CURBSIDE_HOME"], !fromEnvironment.isEmpty {
            return URL(fileURLWithPath: fromEnvironment)
        }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".curbside")
    }

    static func identityPath(_ home: URL) -> String { home.appendingPathComponent("identity.json").path }
    static func databasePath(_ home: URL) -> String { home.appendingPathComponent("profile.sqlite").path }

    /// Creates a profile in `home`, registers `handle` on the relay with the operator's enrollment code, and
    /// publishes prekeys. Nothing is left behind if registration fails.
    ///
    /// - Throws: `ClientError` — `.usage` when `home` holds a profile already, `.network` when the relay cannot be
    ///   reached or its certificate is not `relay.fingerprint`, `.protocol` when it refuses the code or handle.
    public static func create(
        home: URL,
        handle: Handle,
        relay: RelayEndpoint,
        enrollmentCode: String,
        passphrase: SecretBytes,
        limits: PasswordHash.Limits = .profile,
        logger: Logger = Client.silentLogger
    ) async throws -> Client {
        guard !FileManager.default.fileExists(atPath: identityPath(home)) else {
            throw ClientError(.profileExists, "\(home.path) holds a profile already", hint: "use another --home, or remove it to start again")
        }
        guard passphrase.count >= 8 else {
            throw ClientError(.invalidArgument, "the passphrase is too short", hint: "use at least 8 characters")
        }
        guard let code = EnrollmentCode(enrollmentCode) else {
            throw ClientError.malformedEnrollmentCode()
        }
        try makePrivateDirectory(home)
        let identity = SigningKey()
        let storageKey = SymmetricKey(byteCount: 32)
        let me = Party(identityKey: identity.verifyingKey, handle: handle)
        let databasePath = databasePath(home)
        do {
            let database = try ProfileDatabase(path: databasePath, storageKey: storageKey)
            try await database.writer.write { db in
                try ProfileDatabase.setSetting(db, "handle", handle.rawValue)
                try ProfileDatabase.setSetting(db, "relay", String(decoding: try JSONEncoder().encode(relay), as: UTF8.self))
            }
            let client = try Client(me: me, relay: relay, home: home, identity: identity, database: database, logger: logger)
            // Argon2id runs before registering: once the relay has the handle, only writing the file remains.
            let file = try await BlockingWork.run {
                try IdentityFile.seal(.init(identity: identity, storageKey: storageKey), handle: handle, passphrase: passphrase, limits: limits)
            }
            try await client.withConnection(loggingIn: false) { connection in
                do {
                    try await connection.register(handle, identity: identity, enrollmentCode: code)
                } catch let error as RelayClientError {
                    throw Client.refusedWhileSettingUp(error, relay: relay)
                }
                // Registered: the profile must exist now whatever else fails (a retry would find the handle taken).
                try writePrivateFile(identityPath(home), JSONEncoder.sorted.encode(file))
                do {
                    try await client.maintainPrekeys(connection)
                } catch {
                    logger.warning("prekeys not yet published (the next sync does it): \(error)")
                }
            }
            try restrictDatabaseFiles(home)
            return client
        } catch {
            guard !FileManager.default.fileExists(atPath: identityPath(home)) else { throw error }
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: databasePath + suffix) }
            throw (error as? ClientError)?.whileSettingUp() ?? error
        }
    }

    /// Opens the profile in `home` with `passphrase`.
    ///
    /// - Throws: `ClientError` `.usage` when there is no profile, `.profile` for a wrong passphrase or damaged files.
    public static func open(home: URL, passphrase: SecretBytes, logger: Logger = Client.silentLogger) async throws -> Client {
        guard let data = FileManager.default.contents(atPath: identityPath(home)) else {
            throw ClientError(
                .noProfile,
                "there is no Curbside profile in \(home.path)",
                hint: "create one with `curbside init`, or point --home (or CURBSIDE_HOME) at yours"
            )
        }
        let file: IdentityFile
        do {
            file = try JSONDecoder().decode(IdentityFile.self, from: data)
        } catch {
            throw ClientError(.profileDamaged, "\(identityPath(home)) is not a Curbside identity file")
        }
        let secrets = try await BlockingWork.run { try file.open(passphrase: passphrase) }
        let database = try ProfileDatabase(path: databasePath(home), storageKey: secrets.storageKey)
        try restrictDatabaseFiles(home)
        guard let handleText = try await database.setting("handle"), let handle = try? Handle(handleText),
            let relayText = try await database.setting("relay"),
            let relay = try? JSONDecoder().decode(RelayEndpoint.self, from: Data(relayText.utf8))
        else {
            throw ClientError(.profileDamaged, "the profile database in \(home.path) is incomplete")
        }
        guard handle.rawValue == file.handle else {
            throw ClientError(.profileDamaged, "the identity file and the profile database name different handles")
        }
        return try Client(
            me: Party(identityKey: secrets.identity.verifyingKey, handle: handle),
            relay: relay,
            home: home,
            identity: secrets.identity,
            database: database,
            logger: logger
        )
    }

    /// A logger that drops everything (the default: the library never writes to the terminal by itself).
    public static let silentLogger = Logger(label: "curbside.client", factory: { _ in SwiftLogNoOpLogHandler() })

    /// The safety number of this profile with `other` (spec/safety-number.md).
    public nonisolated func safetyNumber(with other: Party) -> SafetyNumber {
        SafetyNumber(me, other)
    }
}

// MARK: - Files

/// Creates the profile directory 0700; an existing directory is made 0700 only if it is empty (never, say, $HOME).
func makePrivateDirectory(_ url: URL, allowExisting: Bool = false) throws {
    if allowExisting, FileManager.default.fileExists(atPath: url.path) { return }
    if FileManager.default.fileExists(atPath: url.path) {
        guard (try FileManager.default.contentsOfDirectory(atPath: url.path)).isEmpty else {
            throw ClientError(.profileExists, "\(url.path) exists and is not empty", hint: "give --home a new or empty directory")
        }
        try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: url.path)
        return
    }
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
}

/// Writes a file readable by its owner only, atomically (temporary file, fsync, rename).
func writePrivateFile(_ path: String, _ data: Data) throws {
    let temporary = path + ".tmp"
    unlink(temporary)  // a stale one could carry another mode
    let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL, 0o600)
    guard fd >= 0 else { throw ClientError(.profileNotWritable, "cannot write \(temporary): \(String(cString: strerror(errno)))") }
    let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    let synced = fsync(fd) == 0
    close(fd)
    guard written == data.count, synced, rename(temporary, path) == 0 else {
        unlink(temporary)
        throw ClientError(.profileNotWritable, "cannot write \(path): \(String(cString: strerror(errno)))")
    }
    let directory = open((path as NSString).deletingLastPathComponent, O_RDONLY)
    if directory >= 0 {
        _ = fsync(directory)
        close(directory)
    }
}

/// SQLite creates its files with the umask; the profile's are the owner's alone.
func restrictDatabaseFiles(_ home: URL) throws {
    for suffix in ["", "-wal", "-shm"] {
        let path = Client.databasePath(home) + suffix
        if FileManager.default.fileExists(atPath: path) {
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        }
    }
}

extension JSONEncoder {
    static var sorted: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        return encoder
    }
}
