import CurbsideTLS
import Testing

@Suite("OpenSSL bindings")
struct OpenSSLLibraryTests {
    @Test func linksOpenSSL3WithTLS13() {
        #expect(OpenSSLLibrary.versionString.hasPrefix("OpenSSL 3."))
        // OpenSSL 3 encodes its version as 0xMNN00PP0.
        #expect(OpenSSLLibrary.versionNumber >> 28 == 3)
        #expect(OpenSSLLibrary.supportsTLS13)
    }
}
