import CurbsideTestSupport
import PostgresNIO

extension PostgresRelayPair: StoppableFixture {}

extension PostgresConnection: StoppableFixture {
    public func stop() async { try? await close() }
}
