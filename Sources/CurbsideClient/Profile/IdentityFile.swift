import CurbsideWire
import Foundation

/// The profile's secrets at rest: the Ed25519 identity seed and the storage key that encrypts the database's
/// private columns, sealed with a key derived from the passphrase (Argon2id, parameters stored in the file).
///
/// The file is JSON so a person can see what it holds without seeing any secret:
/// `{"version":1,"handle":…,"identity_key":…,"kdf":{"algorithm":"argon2id13","operations":…,"memory_bytes":…,
/// "salt":…},"nonce":…,"sealed":…}`. The handle and public key are authenticated as associated data.
struct IdentityFile: Codable, Sendable {
    struct KDF: Codable, Sendable {
        var algorithm: String
        var operations: UInt64
        var memoryBytes: UInt64
        var salt: String

        enum CodingKeys: String, CodingKey {
            case algorithm, operations, salt
            case memoryBytes = "memory_bytes"
        }
    }

    var version: Int
    var handle: String
    var identityKey: String
    var kdf: KDF
    var nonce: String
    var sealed: String

    enum CodingKeys: String, CodingKey {
        case version, handle, kdf, nonce, sealed
        case identityKey = "identity_key"
    }

    /// What the file protects.
    struct Secrets: Sendable {
        let identity: SigningKey
        let storageKey: SymmetricKey
    }

    static func seal(_ secrets: Secrets, handle: Handle, passphrase: SecretBytes, limits: PasswordHash.Limits) throws -> IdentityFile {
        let salt = secureRandomBytes(count: PasswordHash.saltByteCount)
        let key = try PasswordHash.deriveKey(from: passphrase, salt: salt, limits: limits)
        let nonce = secureRandomBytes(count: ChaChaPoly.nonceByteCount)
        var plaintext = secrets.identity.seed.copiedBytes + secrets.storageKey.secret.copiedBytes
        defer { secureZero(&plaintext) }
        let publicKey = secrets.identity.verifyingKey.rawRepresentation
        let sealed = try ChaChaPoly.seal(plaintext, using: key, nonce: nonce, authenticating: associatedData(handle.rawValue, publicKey))
        return IdentityFile(
            version: 1,
            handle: handle.rawValue,
            identityKey: publicKey.hexString,
            kdf: KDF(algorithm: "argon2id13", operations: limits.operations, memoryBytes: limits.memoryBytes, salt: salt.hexString),
            nonce: nonce.hexString,
            sealed: sealed.hexString
        )
    }

    func open(passphrase: SecretBytes) throws -> Secrets {
        guard version == 1, kdf.algorithm == "argon2id13",
            let salt = [UInt8](hexString: kdf.salt), let nonce = [UInt8](hexString: nonce),
            let sealed = [UInt8](hexString: sealed), let publicKey = [UInt8](hexString: identityKey)
        else {
            throw ClientError(.profileDamaged, "the identity file is damaged or of an unknown version")
        }
        let limits = PasswordHash.Limits(operations: kdf.operations, memoryBytes: kdf.memoryBytes)
        let key: SymmetricKey
        do {
            key = try PasswordHash.deriveKey(from: passphrase, salt: salt, limits: limits)
        } catch {
            throw ClientError(.profileDamaged, "the identity file's key derivation cannot run: \(error)")
        }
        var plaintext: [UInt8]
        do {
            plaintext = try ChaChaPoly.open(sealed, using: key, nonce: nonce, authenticating: Self.associatedData(handle, publicKey))
        } catch {
            throw ClientError.wrongPassphrase()
        }
        defer { secureZero(&plaintext) }
        guard plaintext.count == 64 else { throw ClientError(.profileDamaged, "the identity file is damaged") }
        let identity = try SigningKey(seed: SecretBytes(plaintext[0..<32]))
        guard identity.verifyingKey.rawRepresentation == publicKey else {
            throw ClientError(.profileDamaged, "the identity file's key does not match its public key")
        }
        return Secrets(identity: identity, storageKey: SymmetricKey(SecretBytes(plaintext[32..<64])))
    }

    private static func associatedData(_ handle: String, _ publicKey: [UInt8]) -> [UInt8] {
        Array("curbside/v1/identity-file\0".utf8) + [UInt8(handle.utf8.count)] + Array(handle.utf8) + publicKey
    }
}
