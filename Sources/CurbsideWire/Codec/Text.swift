/// The rules for text fields (spec/encoding.md §Text): well-formed UTF-8 and no control characters other than
/// line feed and tab, so that what one client shows is what another shows.
enum Text {
    static func validate(_ raw: [UInt8], field: String, offset: Int?) throws(WireError) -> String {
        guard let text = String(validating: raw, as: UTF8.self) else {
            throw WireError(.invalidText, field: field, offset: offset, detail: "not well-formed utf-8")
        }
        for scalar in text.unicodeScalars where isForbidden(scalar) {
            throw WireError(
                .invalidText,
                field: field,
                offset: offset,
                detail: "control character U+\(String(scalar.value, radix: 16, uppercase: true))"
            )
        }
        return text
    }

    /// Checks a text value being built, with the same rules and bounds as decoding.
    static func check(_ text: String, field: String, bounds: ClosedRange<Int>) throws(WireError) {
        let raw = Array(text.utf8)
        guard bounds.contains(raw.count) else {
            throw WireError(
                .lengthOutOfBounds,
                field: field,
                offset: nil,
                detail: "length \(raw.count) outside \(bounds.lowerBound)...\(bounds.upperBound)"
            )
        }
        _ = try validate(raw, field: field, offset: nil)
    }

    private static func isForbidden(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x09, 0x0A: false
        case 0x00...0x1F, 0x7F...0x9F: true
        default: false
        }
    }
}
