/// A JSON value whose objects keep their keys in the order written, so generated files are byte-for-byte stable.
package indirect enum JSON: Sendable {
    case string(String)
    case number(UInt64)
    case object([(String, JSON)])
    case array([JSON])

    static func hex(_ bytes: [UInt8]) -> JSON { .string(bytes.hexString) }

    /// Two-space indented text ending in a newline.
    package var rendered: String {
        var out = ""
        render(into: &out, indent: 0)
        return out + "\n"
    }

    private func render(into out: inout String, indent: Int) {
        let pad = String(repeating: " ", count: indent)
        let inner = String(repeating: " ", count: indent + 2)
        switch self {
        case .string(let text):
            out += Self.quoted(text)
        case .number(let value):
            out += String(value)
        case .array(let items):
            if items.isEmpty { out += "[]"; return }
            out += "[\n"
            for (index, item) in items.enumerated() {
                out += inner
                item.render(into: &out, indent: indent + 2)
                out += index == items.count - 1 ? "\n" : ",\n"
            }
            out += pad + "]"
        case .object(let members):
            if members.isEmpty { out += "{}"; return }
            out += "{\n"
            for (index, (key, value)) in members.enumerated() {
                out += inner + Self.quoted(key) + ": "
                value.render(into: &out, indent: indent + 2)
                out += index == members.count - 1 ? "\n" : ",\n"
            }
            out += pad + "}"
        }
    }

    private static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// One vector file: a description, the number of cases, and the cases.
struct VectorFileBuilder {
    let name: String
    let description: String
    private(set) var cases: [JSON] = []

    init(name: String, description: String) {
        self.name = name
        self.description = description
    }

    mutating func add(_ name: String, _ fields: [(String, JSON)], expect: String) {
        cases.append(.object([("name", .string(name))] + fields + [("expect", .string(expect))]))
    }

    var json: JSON {
        .object([
            ("description", .string(description)),
            ("count", .number(UInt64(cases.count))),
            ("cases", .array(cases)),
        ])
    }
}
