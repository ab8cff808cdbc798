internal import CSodium

/// libsodium, initialised once for the whole process.
///
/// Every entry point of the Sodium layer reads `Sodium.ready` first; `sodium_init` is idempotent and thread-safe,
/// and the global `let` makes Swift run it exactly once.
enum Sodium {
    static let ready: Void = {
        guard sodium_init() >= 0 else {
            fatalError("internal error: libsodium failed to initialise")
        }
    }()

    /// The version of the libsodium the process linked, such as "1.0.18".
    static var versionString: String {
        String(cString: sodium_version_string())
    }
}

/// Versions of the C libraries under the wire format, for `curbside --version` and bug reports.
public enum CryptoLibrary {
    /// The version string of the linked libsodium.
    public static var sodiumVersion: String { Sodium.versionString }
}

/// Fills `count` bytes from the operating system's CSPRNG (libsodium's `randombytes_buf`).
package func secureRandomBytes(count: Int) -> [UInt8] {
    _ = Sodium.ready
    var bytes = [UInt8](repeating: 0, count: count)
    bytes.withUnsafeMutableBytes { randombytes_buf($0.baseAddress!, count) }
    return bytes
}
