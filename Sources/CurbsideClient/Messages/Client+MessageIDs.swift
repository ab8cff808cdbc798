import CurbsideWire
import GRDB

extension Client {
    /// The fewest hex digits a shortened message id may have: with fewer, two of a busy clinician's messages would
    /// too often share a prefix, and a typo would too often name another message.
    public static let minimumMessageIDPrefix = 6

    /// The message whose id is `text` or begins with it, as git accepts a unique prefix of a commit id: at least
    /// ``minimumMessageIDPrefix`` hex digits, either case.
    ///
    /// A full id (32 hex digits) is returned as it is, whether or not this profile holds it.
    ///
    /// - Throws: `ClientError` `.invalidArgument` for anything but hex digits, or too few of them;
    ///   `.unknownMessage` when no message id begins with it; `.ambiguousMessageID` when several do (the message
    ///   lists them).
    public func messageID(matching text: String) async throws -> MessageID {
        let prefix = text.lowercased()
        guard !prefix.isEmpty, prefix.count <= 32, prefix.allSatisfy(\.isHexDigit) else {
            throw ClientError(
                .invalidArgument,
                "\"\(text)\" is not a message id (32 hex digits, or the first \(Self.minimumMessageIDPrefix) or more of them)",
                hint: "`curbside inbox` and `curbside status` list ids"
            )
        }
        if prefix.count == 32, let bytes = [UInt8](hexString: prefix) { return try MessageID(rawValue: bytes) }
        guard prefix.count >= Self.minimumMessageIDPrefix else {
            throw ClientError(
                .invalidArgument,
                "\"\(text)\" is not a message id: too short, give at least \(Self.minimumMessageIDPrefix) of its 32 hex digits",
                hint: "`curbside inbox` and `curbside status` list ids"
            )
        }
        // Ten candidates are enough to show the prefix is not unique and to pick from.
        let candidates = try await database.writer.read { db in try MessageStore.ids(db, withHexPrefix: prefix, limit: 10) }
        switch candidates.count {
        case 0:
            throw ClientError(.unknownMessage, "no message id begins with \(prefix)", hint: "`curbside inbox` and `curbside status` list ids")
        case 1:
            return candidates[0]
        default:
            throw ClientError(
                .ambiguousMessageID,
                "\(prefix) is the beginning of several message ids: "
                    + candidates.map(\.description).joined(separator: ", ") + (candidates.count == 10 ? ", …" : ""),
                hint: "give more digits of the id you mean"
            )
        }
    }
}
