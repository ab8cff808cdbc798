import Foundation

/// The CLI's JSON, for every command: sorted snake_case keys, slashes as they are, and each time twice — as
/// milliseconds since 1970 under its own name (`created_at`, `at`, a timeline step such as `delivered`), and as RFC
/// 3339 text in UTC with milliseconds under the same name with `_rfc3339` appended, for people and for tools that
/// parse dates rather than numbers.
enum CLIJSON {
    /// The names of times that do not end in `_at`: `at`, and the steps of a consult's timeline (`status`).
    static let timeNames: Set<String> = ["at", "created", "stored", "delivered_to_device", "delivered", "read", "answered"]
    /// Numbers below this (2000-01-01) are not times, whatever their name.
    static let earliest: Int64 = 946_684_800_000

    static func isTime(_ name: String) -> Bool { timeNames.contains(name) || name.hasSuffix("_at") }

    /// `value` as one line of JSON.
    static func text(_ value: some Encodable) throws -> String {
        String(decoding: try data(value), as: UTF8.self)
    }

    static func data(_ value: some Encodable) throws -> Data {
        let encoded = try JSONEncoder.cli.encode(value)
        let tree = try JSONSerialization.jsonObject(with: encoded, options: [.fragmentsAllowed])
        return try JSONSerialization.data(withJSONObject: annotated(tree), options: [.sortedKeys, .withoutEscapingSlashes, .fragmentsAllowed])
    }

    /// `tree` with the RFC 3339 text beside each time.
    static func annotated(_ tree: Any) -> Any {
        if let array = tree as? [Any] { return array.map(annotated) }
        guard let object = tree as? [String: Any] else { return tree }
        var result: [String: Any] = [:]
        for (name, value) in object {
            result[name] = annotated(value)
            if isTime(name), let milliseconds = (value as? NSNumber)?.int64Value, milliseconds >= earliest {
                result[name + "_rfc3339"] = rfc3339(milliseconds)
            }
        }
        return result
    }

    /// `2026-12-05T03:26:35.123Z`.
    static func rfc3339(_ milliseconds: Int64) -> String {
        var seconds = time_t(milliseconds / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func digits(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(digits(parts.tm_year + 1900, 4))-\(digits(parts.tm_mon + 1, 2))-\(digits(parts.tm_mday, 2))"
            + "T\(digits(parts.tm_hour, 2)):\(digits(parts.tm_min, 2)):\(digits(parts.tm_sec, 2))"
            + ".\(digits(Int32(milliseconds % 1000), 3))Z"
    }
}
