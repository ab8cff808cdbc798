import CurbsideWire
import Foundation

/// A vector file of spec/vectors: `{"description": …, "count": N, "cases": [...]}`.
///
/// Loading refuses a file with no cases and one whose `count` differs from the cases it holds, so a vector cannot
/// silently drop out.
public struct VectorFile<Case: Decodable>: Decodable {
    public let description: String
    public let count: Int
    public let cases: [Case]

    public struct LoadError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Loads `name` from spec/vectors/.
    public static func load(_ name: String) throws -> VectorFile {
        try load(from: Repository.vectors.appendingPathComponent(name))
    }

    public static func load(from url: URL) throws -> VectorFile {
        let data = try Data(contentsOf: url)
        let file = try JSONDecoder().decode(VectorFile.self, from: data)
        guard !file.cases.isEmpty else {
            throw LoadError(description: "\(url.lastPathComponent): no cases")
        }
        guard file.cases.count == file.count else {
            throw LoadError(description: "\(url.lastPathComponent): declares \(file.count) cases, holds \(file.cases.count)")
        }
        return file
    }
}

/// Bytes written as a hex string in JSON.
public struct Hex: Decodable, Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let bytes = [UInt8](hexString: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not hex: \(text)"))
        }
        self.bytes = bytes
    }

    public var description: String { bytes.hexString }
}

/// The `expect` field: "valid" or an error identifier from spec/errors.md. Any other value fails the load.
public enum VectorExpectation: Decodable, Hashable, Sendable, CustomStringConvertible {
    case valid
    case error(String)

    /// Every identifier spec/errors.md defines, across domains.
    public static let knownIdentifiers: Set<String> = Set(
        WireError.allCodes.map(\.identifier) + BundleError.allCodes.map(\.identifier)
            + EnvelopeError.allCodes.map(\.identifier) + CryptoError.allCodes.map(\.identifier)
            + RelayError.allCodes.map(\.identifier)
            + AgeError.allCodes.map(\.identifier)
    )

    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        if text == "valid" {
            self = .valid
        } else if Self.knownIdentifiers.contains(text) {
            self = .error(text)
        } else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "unknown expect value \"\(text)\"")
            )
        }
    }

    public var description: String {
        switch self {
        case .valid: "valid"
        case .error(let identifier): identifier
        }
    }
}

/// The identifier of any Curbside error, for comparing with a vector's `expect`.
public func errorIdentifier(_ error: any Error) -> String {
    switch error {
    case let error as WireError: error.code.identifier
    case let error as BundleError: error.code.identifier
    case let error as EnvelopeError: error.code.identifier
    case let error as CryptoError: error.code.identifier
    case let error as RelayError: error.code.identifier
    case let error as AgeError: error.code.identifier
    default: "unexpected error: \(error)"
    }
}
