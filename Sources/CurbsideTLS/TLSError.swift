internal import COpenSSL

/// Why a TLS operation failed. OpenSSL's error queue is drained into `openSSLErrors` at the boundary.
public struct TLSError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public var description: String { name }

        /// The handshake failed: protocol error, version or ALPN mismatch, bad certificate.
        public static let handshakeFailed = Code(name: "handshake failed")
        /// The handshake did not finish within the configured time.
        public static let handshakeTimeout = Code(name: "handshake timeout")
        /// The relay's certificate key is not the pinned one.
        public static let pinMismatch = Code(name: "pinned key mismatch")
        /// A record failed to decrypt or the peer broke the protocol after the handshake.
        public static let protocolError = Code(name: "protocol error")
        /// The connection closed without close_notify, cutting data short.
        public static let uncleanShutdown = Code(name: "unclean shutdown")
        /// A certificate or key could not be made, read or written.
        public static let certificateError = Code(name: "certificate error")
        /// The TLS configuration cannot be used (files, ALPN, keys that do not match).
        public static let invalidConfiguration = Code(name: "invalid configuration")
        /// Writing after the connection started closing or failed.
        public static let closed = Code(name: "connection closed")
        /// Too much written before the handshake completed.
        public static let bufferLimit = Code(name: "buffer limit")
    }

    public let code: Code
    /// Public detail: fingerprints, protocol names, file paths.
    public let detail: String
    /// OpenSSL's own messages, oldest first, as drained from its error queue.
    public let openSSLErrors: [String]

    public init(_ code: Code, _ detail: String, openSSLErrors: [String] = []) {
        self.code = code
        self.detail = detail
        self.openSSLErrors = openSSLErrors
    }

    /// An error with OpenSSL's queued messages attached, leaving the queue empty.
    static func drainingQueue(_ code: Code, _ detail: String) -> TLSError {
        TLSError(code, detail, openSSLErrors: OpenSSLErrorQueue.drain())
    }

    public var description: String {
        var text = "tls: \(code.name): \(detail)"
        if !openSSLErrors.isEmpty { text += " (\(openSSLErrors.joined(separator: "; ")))" }
        return text
    }

    public static func == (lhs: TLSError, rhs: TLSError) -> Bool { lhs.code == rhs.code && lhs.detail == rhs.detail }
    public func hash(into hasher: inout Hasher) {
        hasher.combine(code)
        hasher.combine(detail)
    }
}

/// OpenSSL's per-thread error queue.
enum OpenSSLErrorQueue {
    /// Removes every queued error and returns their texts, oldest first.
    static func drain() -> [String] {
        var messages: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            messages.append(String(cString: buffer))
        }
        return messages
    }

    /// Empties the queue before a call whose failure will be read from it.
    static func clear() {
        ERR_clear_error()
    }
}
