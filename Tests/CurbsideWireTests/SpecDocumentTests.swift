import CurbsideTestSupport
import Foundation
import Testing

@testable import CurbsideWire

@Suite("spec documents")
struct SpecDocumentTests {
    /// spec/errors.md lists exactly the codes the code defines, with the same numbers and identifiers.
    @Test func errorTableMatchesTheCode() throws {
        let text = try String(contentsOf: Repository.root.appendingPathComponent("spec/errors.md"), encoding: .utf8)
        var listed: [UInt16: String] = [:]
        for line in text.split(separator: "\n") {
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 3, let number = UInt16(cells[0]) else { continue }
            #expect(listed[number] == nil, "code \(number) listed twice")
            listed[number] = cells[1].trimmingCharacters(in: CharacterSet(charactersIn: "`"))
        }
        var defined: [UInt16: String] = [:]
        for (number, identifier) in WireError.allCodes.map({ ($0.rawValue, $0.identifier) })
            + BundleError.allCodes.map({ ($0.rawValue, $0.identifier) })
            + EnvelopeError.allCodes.map({ ($0.rawValue, $0.identifier) })
            + CryptoError.allCodes.map({ ($0.rawValue, $0.identifier) })
            + RelayError.allCodes.map({ ($0.rawValue, $0.identifier) })
            + AgeError.allCodes.map({ ($0.rawValue, $0.identifier) })
        {
            #expect(defined[number] == nil, "code \(number) defined twice")
            defined[number] = identifier
        }
        #expect(listed == defined)
        #expect(Set(defined.values).count == defined.count, "identifiers must be unique across domains")
    }

    /// Every document the index links to exists.
    @Test func indexLinksResolve() throws {
        let spec = Repository.root.appendingPathComponent("spec")
        let index = try String(contentsOf: spec.appendingPathComponent("README.md"), encoding: .utf8)
        let links = index.matches(of: /\]\(([^)#]+)/).map { String($0.output.1) }.filter { !$0.hasPrefix("http") }
        #expect(links.count >= 8)
        for link in links {
            #expect(FileManager.default.fileExists(atPath: spec.appendingPathComponent(link).path), "spec/README.md links to \(link)")
        }
    }
}
