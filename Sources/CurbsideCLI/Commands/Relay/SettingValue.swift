/// The value syntaxes of relay.conf: sizes, durations and counts with readable units (docs/relay-configuration.md).
///
/// Parsing throws `SettingValueError` with a phrase that quotes the value (never used for secrets); rendering gives
/// the canonical text check-config prints and `relay init` writes, which parses back to the same value.
enum SettingValue {
    /// Units a size may carry, lowercase; binary (KiB) and decimal (kB) both, bare numbers are bytes.
    static let byteUnits: [(name: String, bytes: UInt64)] = [
        ("", 1), ("b", 1), ("kib", 1 << 10), ("mib", 1 << 20), ("gib", 1 << 30), ("tib", 1 << 40),
        ("kb", 1_000), ("mb", 1_000_000), ("gb", 1_000_000_000), ("tb", 1_000_000_000_000),
    ]
    /// Units a duration must carry, with their length in milliseconds.
    static let durationUnits: [(name: String, milliseconds: Int64)] = [
        ("ms", 1), ("s", 1_000), ("sec", 1_000), ("m", 60_000), ("min", 60_000), ("h", 3_600_000), ("d", 86_400_000),
    ]

    /// `4 GiB`, `512MiB`, `1000000`, `10 MB`: a whole number of bytes.
    static func bytes(_ text: String) throws(SettingValueError) -> UInt64 {
        let (number, unit) = try split(text, expecting: "a size such as 4 GiB")
        guard let scale = byteUnits.first(where: { $0.name == unit.lowercased() })?.bytes else {
            throw SettingValueError(
                "\"\(text)\" has unknown unit \"\(unit)\"; use B, KiB, MiB, GiB, TiB (or kB, MB, GB, TB)"
            )
        }
        let (value, overflow) = number.multipliedReportingOverflow(by: scale)
        guard !overflow else { throw SettingValueError("\"\(text)\" is too large") }
        return value
    }

    /// `300s`, `14d`, `1h`, `250ms`, `5min`: a unit is required, since a bare number could be seconds or minutes.
    static func duration(_ text: String) throws(SettingValueError) -> Duration {
        let (number, unit) = try split(text, expecting: "a duration such as 300s")
        guard !unit.isEmpty else {
            throw SettingValueError("\"\(text)\" needs a unit: ms, s, min, h or d (such as \(number)s)")
        }
        guard let scale = durationUnits.first(where: { $0.name == unit.lowercased() })?.milliseconds else {
            throw SettingValueError("\"\(text)\" has unknown unit \"\(unit)\"; use ms, s, min, h or d")
        }
        guard number <= UInt64(Int64.max / scale) else { throw SettingValueError("\"\(text)\" is too long") }
        return .milliseconds(Int64(number) * scale)
    }

    /// `10000` or `10_000`: a whole number without a unit.
    static func count(_ text: String) throws(SettingValueError) -> Int {
        let (number, unit) = try split(text, expecting: "a whole number")
        guard unit.isEmpty else { throw SettingValueError("\"\(text)\" is a count and takes no unit") }
        guard number <= UInt64(Int.max) else { throw SettingValueError("\"\(text)\" is too large") }
        return Int(number)
    }

    /// The digits (underscores allowed between them) and the unit after them, spaces around either ignored.
    private static func split(_ text: String, expecting what: String) throws(SettingValueError) -> (UInt64, String) {
        let trimmed = text.trimmingSpaces
        let digits = trimmed.prefix { $0.isASCII && ($0.isNumber || $0 == "_") }
        let unit = trimmed.dropFirst(digits.count).trimmingSpaces
        guard let first = digits.first, first != "_", digits.last != "_", !digits.contains("__") else {
            throw SettingValueError(trimmed.isEmpty ? "is empty; expected \(what)" : "\"\(text)\" is not \(what)")
        }
        guard unit.allSatisfy({ $0.isASCII && $0.isLetter }) else {
            throw SettingValueError("\"\(text)\" is not \(what)")
        }
        guard let number = UInt64(digits.filter { $0 != "_" }) else {
            throw SettingValueError("\"\(text)\" is too large")
        }
        return (number, unit)
    }

    /// `4 GiB` for 4 << 30, `4 GB` for 4 000 000 000: the largest unit that divides the size, binary before decimal
    /// for the same magnitude, else bytes.
    static func render(bytes: UInt64) -> String {
        let units: [(String, UInt64)] = [
            ("TiB", 1 << 40), ("TB", 1_000_000_000_000), ("GiB", 1 << 30), ("GB", 1_000_000_000), ("MiB", 1 << 20),
            ("MB", 1_000_000), ("KiB", 1 << 10), ("kB", 1_000),
        ]
        for (name, scale) in units where bytes >= scale && bytes % scale == 0 {
            return "\(bytes / scale) \(name)"
        }
        return "\(bytes) B"
    }

    /// `14d`, `1h`, `5min`, `10s`, `250ms`: the largest unit that divides the duration (milliseconds at least).
    static func render(duration: Duration) -> String {
        let milliseconds = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        if milliseconds == 0 { return "0s" }
        for (name, scale) in [("d", Int64(86_400_000)), ("h", 3_600_000), ("min", 60_000), ("s", 1_000)]
        where milliseconds >= scale && milliseconds % scale == 0 {
            return "\(milliseconds / scale)\(name)"
        }
        return "\(milliseconds)ms"
    }
}

/// A value relay.conf cannot use: a phrase saying what is wrong, to which the file, line and key are added.
struct SettingValueError: Error, Equatable {
    let message: String

    init(_ message: String) {
        self.message = message
    }
}

extension StringProtocol {
    var trimmingSpaces: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
