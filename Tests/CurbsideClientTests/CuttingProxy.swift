import CurbsideTestSupport
import Foundation
import NIOConcurrencyHelpers

/// A TCP proxy on 127.0.0.1 that forwards to `target` and cuts each connection after a random number of bytes
/// (counted in both directions), alternately with FIN and RST, until it has cut `cuts` times; then it forwards
/// untouched. Instead of cutting it can stall (stop forwarding for a while at that point, then go on), and it can
/// delay every read. Threads and blocking sockets: simple, and independent of the code under test.
final class CuttingProxy: @unchecked Sendable {
    /// What happens when a connection's byte budget is spent.
    enum Fault: Sendable {
        /// The connection is closed, with FIN or RST (alternately, by the budget's parity).
        case cut
        /// Nothing is forwarded for this long; then the connection carries on.
        case stall(milliseconds: Int)
    }

    let port: Int
    private let listener: Int32
    private let target: Int
    private let state = NIOLockedValueBox((cutsLeft: 0, cutsDone: 0, clientToRelay: UInt64(0), stopped: false))
    private let range: ClosedRange<Int>
    private var rng: SplitMix64
    private let fault: Fault
    private let delayMicroseconds: UInt32

    /// - Parameters:
    ///   - cuts: how many connections to cut.
    ///   - after: the range of bytes a connection carries before it is cut.
    ///   - fault: what happens at the end of the budget.
    ///   - delayMicroseconds: added before forwarding every read, in both directions (a slow link).
    init(target: Int, cuts: Int, after range: ClosedRange<Int>, seed: UInt64, fault: Fault = .cut, delayMicroseconds: UInt32 = 0) throws {
        self.target = target
        self.range = range
        self.fault = fault
        self.delayMicroseconds = delayMicroseconds
        rng = SplitMix64(seed: seed)
        state.withLockedValue { $0.cutsLeft = cuts }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        listener = fd
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(fd, 16) == 0 else { throw CocoaError(.fileWriteUnknown) }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        port = Int(UInt16(bigEndian: actual.sin_port))
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    var cutsDone: Int { state.withLockedValue { $0.cutsDone } }
    /// Bytes the client sent towards the relay, over every connection.
    var clientToRelayBytes: UInt64 { state.withLockedValue { $0.clientToRelay } }

    func stop() {
        state.withLockedValue { $0.stopped = true }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            guard client >= 0 else { return }
            let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = UInt16(target).bigEndian
            let connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            guard connected == 0 else {
                close(client)
                close(upstream)
                continue
            }
            let limit: Int? = state.withLockedValue { state in
                guard state.cutsLeft > 0 else { return nil }
                state.cutsLeft -= 1
                return Int.random(in: range, using: &rng)
            }
            var stall: UInt32?
            if case .stall(let milliseconds) = fault { stall = UInt32(milliseconds) * 1000 }
            let connection = ProxiedConnection(
                client: client,
                upstream: upstream,
                limit: limit,
                reset: (limit ?? 0) % 2 == 1,
                stallMicroseconds: stall,
                delayMicroseconds: delayMicroseconds
            ) { [state] count, toRelay, cut in
                state.withLockedValue {
                    if toRelay { $0.clientToRelay += UInt64(count) }
                    if cut { $0.cutsDone += 1 }
                }
            }
            connection.start()
        }
    }
}

private final class ProxiedConnection: @unchecked Sendable {
    let client: Int32, upstream: Int32
    let limit: Int?
    let reset: Bool
    /// Stall at the limit for this long instead of cutting.
    let stallMicroseconds: UInt32?
    let delayMicroseconds: UInt32
    let record: @Sendable (Int, Bool, Bool) -> Void
    private let carried = NIOLockedValueBox((bytes: 0, closed: false, cut: false))

    init(
        client: Int32,
        upstream: Int32,
        limit: Int?,
        reset: Bool,
        stallMicroseconds: UInt32?,
        delayMicroseconds: UInt32,
        record: @escaping @Sendable (Int, Bool, Bool) -> Void
    ) {
        self.client = client
        self.upstream = upstream
        self.limit = limit
        self.reset = reset
        self.stallMicroseconds = stallMicroseconds
        self.delayMicroseconds = delayMicroseconds
        self.record = record
    }

    private func forward(_ buffer: [UInt8], _ range: Range<Int>, to destination: Int32) {
        var written = range.lowerBound
        while written < range.upperBound {
            let w = buffer[written..<range.upperBound].withUnsafeBytes { write(destination, $0.baseAddress, $0.count) }
            guard w > 0 else { break }
            written += w
        }
    }

    func start() {
        Thread { self.pump(from: self.client, to: self.upstream, toRelay: true) }.start()
        Thread { self.pump(from: self.upstream, to: self.client, toRelay: false) }.start()
    }

    private func pump(from source: Int32, to destination: Int32, toRelay: Bool) {
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let n = read(source, &buffer, buffer.count)
            guard n > 0 else { break }
            // Cut part-way through this read once the connection's budget is spent.
            if delayMicroseconds > 0 { usleep(delayMicroseconds) }
            let stalls = stallMicroseconds != nil
            let (allowed, cut) = carried.withLockedValue { carried -> (Int, Bool) in
                guard !carried.closed else { return (0, false) }
                guard let limit, !(stalls && carried.cut) else { return (n, false) }
                let allowed = max(0, min(n, limit - carried.bytes))
                carried.bytes += allowed
                // Both directions reach the budget; the cut is counted once.
                guard carried.bytes >= limit, !carried.cut else { return (allowed, false) }
                carried.cut = true
                return (allowed, true)
            }
            if allowed > 0 {
                forward(buffer, 0..<allowed, to: destination)
                record(allowed, toRelay, false)
            }
            if cut {
                record(0, toRelay, true)
                guard let stallMicroseconds else { break }
                // A link that freezes and comes back: the rest of this read goes on after the pause.
                usleep(stallMicroseconds)
                forward(buffer, allowed..<n, to: destination)
                record(n - allowed, toRelay, false)
                continue
            }
            if stalls { continue }
            if allowed < n || carried.withLockedValue({ $0.cut }) { break }
        }
        closeBoth()
    }

    private func closeBoth() {
        let first = carried.withLockedValue { carried -> Bool in
            defer { carried.closed = true }
            return !carried.closed
        }
        guard first else { return }
        if reset {
            // RST instead of FIN: linger on, timeout zero.
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            setsockopt(client, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        }
        shutdown(client, Int32(SHUT_RDWR))
        shutdown(upstream, Int32(SHUT_RDWR))
        close(client)
        close(upstream)
    }
}
