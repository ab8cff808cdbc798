import CurbsideTestSupport
import PostgresNIO

extension Providers: StoppableFixture {}
extension FileRelay: StoppableFixture {}
extension LiveRelay: StoppableFixture {}
extension PostgresRelayPair: StoppableFixture {}

extension CraftedPeer: StoppableFixture {
    func stop() async { await close() }
}

extension PostgresConnection: StoppableFixture {
    public func stop() async { try? await close() }
}
