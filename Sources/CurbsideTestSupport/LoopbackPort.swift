import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Ports for the servers tests start on 127.0.0.1 and may stop and start again on the same port.
///
/// A port taken by binding port 0 comes from the kernel's ephemeral range, and once its server stops, the next
/// socket anywhere that binds port 0 (another test's relay, a client connection) can be handed it, so a restart
/// meets "Address already in use". Ports from below that range are never handed out that way.
public enum LoopbackPort {
    public struct Exhausted: Error, CustomStringConvertible {
        public var description: String { "no free port on 127.0.0.1 below the ephemeral range after 200 tries" }
    }

    /// A port on 127.0.0.1, below the ephemeral range, that nothing holds now (not even a connection in TIME_WAIT).
    public static func free() throws -> Int {
        let ephemeralStart = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8))
            .flatMap { $0.split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) } } ?? 32768
        let candidates = 10_000..<max(ephemeralStart, 10_001)
        for _ in 0..<200 {
            let port = Int.random(in: candidates)
            if isFree(port) { return port }
        }
        throw Exhausted()
    }

    /// Whether binding `port` on 127.0.0.1 succeeds now, without SO_REUSEADDR (which would pass over TIME_WAIT).
    static func isFree(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}
