import CurbsideDigest
import CurbsideWire
import Foundation
import GRDB
import NIOCore
import PostgresNIO

/// How many rows a table (or attachments) holds, and the SHA-256 of their values in a canonical encoding and a fixed
/// order: equal digests from the SQLite and the PostgreSQL store mean the same values in the same order.
public struct ContentDigest: Sendable, Hashable, CustomStringConvertible {
    public let rows: Int
    public let sha256: [UInt8]

    public var description: String { "\(rows) rows, sha-256 \(sha256.hexString)" }
}

/// Builds a `ContentDigest` from rows of either store.
///
/// Each value is a tag byte and its bytes — null `0`; an integer (booleans as 0 and 1) `1` and 8 bytes big-endian;
/// text `2`, then 8 bytes of length and its UTF-8; bytes `3`, the length and the bytes — so the engines' column types
/// (INTEGER against BIGINT or BOOLEAN, BLOB against BYTEA) do not matter, only the values, and no two rows encode
/// alike. Each row ends in a `0xff` byte, so the digest also covers where rows begin and end.
final class RowDigester {
    private let hasher = FileSHA256()
    private(set) var rows = 0

    func addNull() { hasher.update([0]) }

    func add(_ value: Int64) {
        hasher.update([1] + withUnsafeBytes(of: value.bigEndian, Array.init))
    }

    func add(_ value: Bool) { add(Int64(value ? 1 : 0)) }

    func add(_ value: String) { addBytes(tag: 2, Array(value.utf8)) }

    func add(_ value: [UInt8]) { addBytes(tag: 3, value) }

    private func addBytes(tag: UInt8, _ bytes: [UInt8]) {
        hasher.update([tag] + withUnsafeBytes(of: UInt64(bytes.count).bigEndian, Array.init))
        hasher.update(bytes)
    }

    /// Ends a row.
    func endRow() {
        hasher.update([0xff])
        rows += 1
    }

    func add(_ value: CopiedValue) {
        switch value {
        case .null: addNull()
        case .integer(let integer): add(integer)
        case .text(let text): add(text)
        case .bytes(let bytes): add(bytes)
        }
    }

    /// A row of SQLite values, in column order.
    func add(_ row: Row) throws {
        for value in row.databaseValues { add(try CopiedValue(value)) }
        endRow()
    }

    /// A row of PostgreSQL values, in column order, by the column's type.
    func add(_ row: PostgresRow) throws {
        for cell in row {
            guard cell.bytes != nil else {
                addNull()
                continue
            }
            switch cell.dataType {
            case .int2, .int4, .int8: add(try cell.decode(Int64.self))
            case .bool: add(try cell.decode(Bool.self))
            case .text, .varchar: add(try cell.decode(String.self))
            case .bytea: add(Array(buffer: try cell.decode(ByteBuffer.self)))
            default:
                throw RelayMigrationError(
                    .targetFailed,
                    "column \(cell.columnName) has a type the relay does not use (\(cell.dataType))"
                )
            }
        }
        endRow()
    }

    func finalize() -> ContentDigest {
        ContentDigest(rows: rows, sha256: hasher.finalize())
    }
}
