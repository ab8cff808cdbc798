import CurbsideClient
import Foundation

/// How `inbox` and `watch` print one message: one line with the unread mark, id, time, kind, peer, urgency and
/// subject (a reply's with its consult's subject), and its attachments' names, formats and real sizes.
///
/// ```
/// * 46fc9803593ede3c8d9c6f6100ce23f0  2026-11-22T01:51:28Z  consult from amara.gp  [urgent]  Pigmented lesion  (lesion.jpg, JPEG, 40 KiB)
///   8a1e03b1c1e4a0d6a1f6b3e2d29c4f10  2026-11-22T02:10:04Z  reply   from osei.derm  re: Pigmented lesion — Dysplastic naevus likely
/// ```
struct MessageLine {
    let summary: MessageSummary
    /// Whether an emergency is drawn in bold red (a terminal that allows colour).
    let colour: Bool

    var text: String {
        let mark = summary.unread == true ? "*" : " "
        let kind = summary.kind.rawValue.padding(toLength: 7, withPad: " ", startingAt: 0)
        let direction = summary.direction == .incoming ? "from" : "to"
        var line = "\(mark) \(summary.id)  \(formatTime(summary.createdAt))  \(kind) \(direction) \(summary.peer)"
        if let urgency = summary.urgency { line += "  " + Self.tag(urgency) }
        line += "  " + title
        if let attachments = summary.attachments, !attachments.isEmpty {
            line += "  (" + attachments.map(AttachmentDescription.init).map(\.short).joined(separator: "; ") + ")"
        }
        guard colour, summary.urgency == .emergency else { return line }
        return "\u{1B}[1;31m" + line + "\u{1B}[0m"
    }

    /// A consult's subject; a reply's first line after its consult's subject ("re: Pigmented lesion — Excise").
    var title: String {
        guard summary.kind == .reply, let subject = summary.consultSubject else { return summary.title }
        return "re: \(Self.shortened(subject, to: 40)) — \(Self.shortened(summary.title, to: 60))"
    }

    /// `[routine]`, `[urgent]`, `[EMERGENCY]`: an emergency stands out even without colour.
    static func tag(_ urgency: Urgency) -> String {
        urgency == .emergency ? "[EMERGENCY]" : "[\(urgency)]"
    }

    static func shortened(_ text: String, to length: Int) -> String {
        text.count <= length ? text : String(text.prefix(length - 1)) + "…"
    }

    /// Whether to colour standard output: never with `NO_COLOR` set (no-color.org), always with `CLICOLOR_FORCE`
    /// set (so a test or a pager can ask), else only on a terminal.
    static func colourAllowed(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        if let noColour = environment["NO_COLOR"], !noColour.isEmpty { return false }
        if let force = environment["CLICOLOR_FORCE"], !force.isEmpty, force != "0" { return true }
        return isatty(STDOUT_FILENO) == 1
    }
}

/// An attachment as people read it: "lesion.jpg, JPEG, 40 KiB".
struct AttachmentDescription {
    let attachment: AttachmentInfo

    init(_ attachment: AttachmentInfo) { self.attachment = attachment }

    /// Name, format and the decrypted file's size (the encrypted one's while it is not on this device).
    var short: String {
        "\(attachment.fileName), \(Self.format(attachment.mediaType)), \(formatBytes(attachment.contentSize ?? attachment.size))"
    }

    /// "JPEG" for image/jpeg and the other formats Curbside recognises; the media type itself otherwise.
    static func format(_ mediaType: String) -> String {
        switch mediaType.lowercased() {
        case "image/jpeg": "JPEG"
        case "image/png": "PNG"
        case "image/webp": "WebP"
        case "image/heic": "HEIC"
        case "image/gif": "GIF"
        case "image/tiff": "TIFF"
        case "application/pdf": "PDF"
        default: mediaType
        }
    }
}

/// Bytes in binary units, as people say them: "812 B", "4.2 KiB", "40 KiB", "3.1 MiB".
func formatBytes(_ count: UInt64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(count), unit = 0
    while value >= 1024, unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    if unit == 0 { return "\(count) B" }
    return value < 10 ? String(format: "%.1f %@", value, units[unit]) : "\(Int(value.rounded())) \(units[unit])"
}
