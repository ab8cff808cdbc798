import NIOPosix

/// Work that holds a thread until it is done — Argon2id, waiting for a file lock, hashing, encrypting, decrypting or
/// verifying a whole file — runs on NIO's pool of threads for blocking work, never on the client's actor or on
/// Swift's cooperative threads (as many as the machine has cores: on two cores, one such call would stall half the
/// process, pushes and keep-alives included).
enum BlockingWork {
    static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive(body)
    }
}
