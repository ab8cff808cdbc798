import Foundation
import Testing

@testable import CurbsideTestSupport

/// The ports tests restart servers on come from below the kernel's ephemeral range, and are free when handed out.
struct LoopbackPortTests {
    @Test func aFreePortIsBelowTheEphemeralRangeAndBindable() throws {
        let range = try String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)
        let ephemeralStart = try #require(range.split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) })
        for _ in 0..<20 {
            let port = try LoopbackPort.free()
            #expect(port >= 10_000 && port < ephemeralStart, "\(port)")
            #expect(LoopbackPort.isFree(port))
        }
    }

    @Test func aPortInUseIsNotFree() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Bool in
                bind(fd, pointer, length) == 0 && listen(fd, 1) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        try #require(bound)
        #expect(!LoopbackPort.isFree(Int(UInt16(bigEndian: address.sin_port))))
    }
}
