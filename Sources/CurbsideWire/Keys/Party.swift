/// One end of a message: an identity key and the handle bound to it (spec/envelope.md §Message).
public struct Party: Sendable, Hashable, CustomStringConvertible, WireCodable {
    public static let wireName = "party"

    public let identityKey: VerifyingKey
    public let handle: Handle

    public init(identityKey: VerifyingKey, handle: Handle) {
        self.identityKey = identityKey
        self.handle = handle
    }

    public init(from reader: inout WireReader, field: String) throws(WireError) {
        identityKey = try VerifyingKey(from: &reader, field: "\(field).identity_key")
        handle = try Handle(from: &reader, field: "\(field).handle")
    }

    public func encode(to writer: inout WireWriter) {
        identityKey.encode(to: &writer)
        handle.encode(to: &writer)
    }

    public var description: String { "\(handle) (\(Array(identityKey.rawRepresentation[0..<4]).hexString)…)" }
}

extension VerifyingKey {
    /// Reads 32 bytes and checks they are a valid Ed25519 public key (`WireError.invalidPublicKey` if not).
    init(from reader: inout WireReader, field: String) throws(WireError) {
        let start = reader.offset
        let raw = try reader.readBytes(count: Self.byteCount, field)
        do {
            try self.init(rawRepresentation: raw)
        } catch {
            throw WireError(.invalidPublicKey, field: field, offset: start, detail: "not a valid ed25519 public key")
        }
    }

    func encode(to writer: inout WireWriter) {
        writer.writeBytes(rawRepresentation)
    }
}

extension AgreementKey.Public {
    /// Reads a 32-byte X25519 public key.
    init(from reader: inout WireReader, field: String) throws(WireError) {
        let raw = try reader.readBytes(count: AgreementKey.byteCount, field)
        self = try! AgreementKey.Public(rawRepresentation: raw)
    }
}
