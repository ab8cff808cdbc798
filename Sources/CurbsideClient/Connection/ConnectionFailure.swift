import CurbsideTLS
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a connection to the relay could not be made, in a person's words: what happened at which step, never the
/// name of a library's error type.
enum ConnectionFailure {
    /// One clause for `error`, thrown while connecting (name lookup, TCP, TLS handshake), to follow "cannot reach the
    /// relay at HOST:PORT: ".
    static func describe(_ error: any Error) -> String {
        switch error {
        case let error as NIOConnectionError:
            if error.dnsAError != nil || error.dnsAAAAError != nil {
                return "its name could not be looked up"
            }
            // Every address of the name failed; the first says what happened (they rarely differ).
            if let first = error.connectionErrors.first {
                return describe(first.error)
            }
            return "its name has no address to connect to"
        case let error as IOError:
            return describe(errno: error.errnoCode)
        case let error as ChannelError:
            if case .connectTimeout(let amount) = error {
                return "no answer within \(amount.nanoseconds / 1_000_000_000) s"
            }
            return "the connection failed (\(error))"
        case let error as TLSError:
            switch error.code {
            case .handshakeFailed, .protocolError:
                return "something answered, but not a Curbside relay (the TLS handshake failed)"
            case .handshakeTimeout:
                return "it accepted the connection but did not finish the TLS handshake"
            case .closed, .uncleanShutdown:
                return "it closed the connection during the TLS handshake"
            default:
                return "the TLS handshake failed (\(error.code.name))"
            }
        default:
            return "the connection failed"
        }
    }

    private static func describe(errno code: CInt) -> String {
        switch code {
        case ECONNREFUSED: "nothing accepts connections there (connection refused)"
        case ETIMEDOUT: "no answer (timed out)"
        case ENETUNREACH: "this machine has no route to it (network unreachable)"
        case EHOSTUNREACH: "no route to the host (host unreachable)"
        case ECONNRESET: "it reset the connection"
        default: "the connection failed (\(String(cString: strerror(code))))"
        }
    }
}
