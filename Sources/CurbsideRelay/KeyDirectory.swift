import CurbsideWire

/// Enrollment, registration and the prekey directory: the protocol rules over a `RelayStore`.
///
/// The store keeps records; this type decides what may be stored: prekeys must carry the account's signatures,
/// enrollment codes are random and kept only as hashes.
public struct KeyDirectory: Sendable {
    public let store: any RelayStore
    /// When a bundle fetch leaves fewer one-time prekeys than this, the owner is told to upload more.
    public var lowWaterMark: Int
    /// The most one-time prekeys the relay holds for one account; an upload past it is `quota_exceeded`.
    public var maximumOneTimePrekeys = 1000

    public init(store: any RelayStore, lowWaterMark: Int = 10) {
        self.store = store
        self.lowWaterMark = lowWaterMark
    }

    /// Creates a one-time code that lets `handle` register until `now + lifetimeSeconds`; returns the code to give
    /// the provider (the store keeps only its hash).
    public func enroll(_ handle: Handle, now: Timestamp, lifetimeSeconds: UInt64 = 7 * 24 * 3600) async throws -> EnrollmentCode {
        let code = EnrollmentCode.random()
        try await store.addEnrollment(handle: handle, codeHash: code.hash, expiresAt: now.adding(seconds: lifetimeSeconds))
        return code
    }

    /// Binds a new key to a registered handle (a lost or stolen device): revokes the current key now, keeping the
    /// handle's queue (spec/relay.md §Revocation), and creates a code that lets `handle` register again. Nil, and
    /// nothing changed, when the handle is not registered.
    ///
    /// Two transactions: if the code cannot be stored, the key is revoked all the same and `enroll` makes a code.
    public func replace(
        _ handle: Handle,
        now: Timestamp,
        lifetimeSeconds: UInt64 = 7 * 24 * 3600
    ) async throws -> (revocation: Revocation, code: EnrollmentCode)? {
        guard let revocation = try await store.revoke(handle, droppingQueue: false, now: now) else { return nil }
        return (revocation, try await enroll(handle, now: now, lifetimeSeconds: lifetimeSeconds))
    }

    /// Registers `handle` with `identityKey` using `code`.
    ///
    /// - Throws: `RelayError.enrollmentInvalid`, `.handleTaken`.
    public func register(_ handle: Handle, identityKey: VerifyingKey, code: EnrollmentCode, now: Timestamp) async throws {
        try await store.register(handle: handle, identityKey: identityKey, codeHash: code.hash, now: now)
    }

    /// Stores prekeys uploaded by `handle` after checking every signature against its identity key.
    ///
    /// - Throws: `RelayError.unknownHandle`, `.prekeyRejected` (nothing is stored if any prekey fails).
    public func publish(for handle: Handle, signedPrekey: SignedPrekey?, oneTimePrekeys: [OneTimePrekey]) async throws {
        guard let identityKey = try await store.identityKey(for: handle) else {
            throw RelayError(.unknownHandle, "\(handle) is not registered")
        }
        if let signedPrekey, !signedPrekey.isSigned(by: identityKey) {
            throw RelayError(.prekeyRejected, "signed prekey \(signedPrekey.id) is not signed by \(handle)'s identity key")
        }
        for prekey in oneTimePrekeys where !prekey.isSigned(by: identityKey) {
            throw RelayError(.prekeyRejected, "one-time prekey \(prekey.id) is not signed by \(handle)'s identity key")
        }
        if !oneTimePrekeys.isEmpty,
            try await store.oneTimePrekeyCount(for: handle) + oneTimePrekeys.count > maximumOneTimePrekeys
        {
            throw RelayError(.quotaExceeded, "the relay holds at most \(maximumOneTimePrekeys) one-time prekeys per account")
        }
        try await store.storePrekeys(for: handle, signedPrekey: signedPrekey, oneTimePrekeys: oneTimePrekeys)
    }

    /// Registers from a relay `register` request whose signature the session has verified.
    ///
    /// - Throws: `RelayError.enrollmentInvalid` (including a code that is not 20 code characters), `.handleTaken`.
    public func register(_ request: RegisterRequest, now: Timestamp) async throws {
        let code = try Self.code(request.enrollmentCode)
        try await register(request.handle, identityKey: request.identityKey, code: code, now: now)
    }

    /// Whether a `register` of `check.handle` with `check.enrollmentCode` would be accepted now, as far as the code
    /// and the handle go (the key is not known yet); changes nothing.
    ///
    /// - Throws: `RelayError.enrollmentInvalid` (including a code that is not 20 code characters), `.handleTaken`.
    public func checkEnrollment(_ check: EnrollmentCheck, now: Timestamp) async throws {
        let code = try Self.code(check.enrollmentCode)
        try await store.checkEnrollment(handle: check.handle, codeHash: code.hash, now: now)
    }

    /// A code as it came on the wire: exactly 20 alphabet characters, already normalised (spec/relay.md §Registration).
    private static func code(_ bytes: [UInt8]) throws -> EnrollmentCode {
        guard bytes.allSatisfy({ EnrollmentCode.alphabet.contains(Character(Unicode.Scalar($0))) }),
            let code = EnrollmentCode(String(decoding: bytes, as: UTF8.self))
        else {
            throw RelayError(.enrollmentInvalid, "the enrollment code is not 20 code characters")
        }
        return code
    }

    /// A bundle for `handle`, handing out one one-time prekey; `runningLow` says the owner should upload more.
    ///
    /// - Throws: `RelayError.unknownHandle` when there is no account or no signed prekey yet.
    public func fetchBundle(for handle: Handle) async throws -> (bundle: PrekeyBundle, runningLow: Bool) {
        let (bundle, left) = try await fetchBundleCounting(for: handle)
        return (bundle, left < lowWaterMark)
    }

    /// A bundle for `handle`, with a one-time prekey if `withOneTimePrekey` and any is left, and how many one-time
    /// prekeys the owner has left.
    func fetchBundleCounting(for handle: Handle, withOneTimePrekey: Bool = true) async throws -> (bundle: PrekeyBundle, left: Int) {
        guard let (bundle, left) = try await store.takeBundle(for: handle, withOneTimePrekey: withOneTimePrekey) else {
            throw RelayError(.unknownHandle, "no prekey bundle for \(handle)")
        }
        return (bundle, left)
    }
}
