import CurbsideClient
import Testing

/// HOST:PORT as `relay.conf`'s `listen` and a profile's `--relay` read it: one parser for both.
@Suite("relay endpoint and address")
struct RelayEndpointTests {
    static let fingerprint = String(repeating: "Ab", count: 32)

    @Test(arguments: [
        ("127.0.0.1:4433", "127.0.0.1", 4433),
        ("[::1]:4433", "::1", 4433),
        ("relay.clinic.example:443", "relay.clinic.example", 443),
        ("0.0.0.0:0", "0.0.0.0", 0),
    ])
    func addressesParseAndPrintBack(_ text: String, _ host: String, _ port: Int) throws {
        let address = try #require(RelayEndpoint.Address(text))
        #expect(address == RelayEndpoint.Address(host: host, port: port))
        #expect(address.description == text)
    }

    @Test(arguments: ["4433", ":4433", "[]:4433", "host:", "host:65536", "host:-1", "host:x"])
    func malformedAddressesAreRefused(_ text: String) {
        #expect(RelayEndpoint.Address(text) == nil)
        #expect(RelayEndpoint(address: text, fingerprint: Self.fingerprint) == nil)
    }

    @Test func anEndpointNeedsAPortToConnectToAndAFingerprint() throws {
        #expect(RelayEndpoint(address: "127.0.0.1:0", fingerprint: Self.fingerprint) == nil)
        #expect(RelayEndpoint(address: "127.0.0.1:4433", fingerprint: "abcd") == nil)
        #expect(RelayEndpoint(address: "127.0.0.1:4433", fingerprint: String(repeating: "zz", count: 32)) == nil)
        let endpoint = try #require(RelayEndpoint(address: "[::1]:4433", fingerprint: Self.fingerprint))
        #expect(endpoint == RelayEndpoint(host: "::1", port: 4433, fingerprint: Self.fingerprint.lowercased()))
        #expect(endpoint.address == RelayEndpoint.Address(host: "::1", port: 4433))
        #expect(endpoint.description == "[::1]:4433")
    }
}
