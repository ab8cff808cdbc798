/// Removes location data from photos before they are encrypted, as a stream (spec/attachments.md §Privacy).
///
/// - JPEG: the EXIF GPS directory is emptied in place — its entry count set to 0 and its entries and the values
///   they point to overwritten with zeros — so the file keeps its size and every other byte.
/// - JPEG XMP packets that hold GPS properties are blanked (overwritten with spaces, same size), and Photoshop/IPTC
///   segments (APP13, which carry place names: city, sub-location, country) are zeroed, same size.
/// - JPEG images appended after the first one's end, as phones do for depth maps and previews (Multi-Picture
///   Format), each carry their own EXIF: every image that starts right after an end-of-image marker is cleaned the
///   same way, in place, so the offsets the MPF index holds stay right.
/// - PNG: `tEXt`, `zTXt`, `iTXt` and `eXIf` chunks are dropped; every other chunk is passed on byte for byte.
/// - Anything else passes through unchanged: the sender refuses every other format before it gets here, unless the
///   user keeps metadata (`AttachmentSource.admit`, which judges the same first bytes with `ContentFormat`).
///
/// Memory: the JPEG filter holds at most 512 KiB at a time, the first of each image (metadata segments come before
/// the image data, each at most 64 KiB), and between images looks for the end marker as bytes stream past; the PNG
/// filter holds one chunk header at a time and streams chunk bodies.
public struct MetadataFilter: Sendable {
    /// The format detected from the first bytes.
    public enum Kind: Sendable { case jpeg, png, other }

    /// Nil until enough bytes were seen to tell.
    public private(set) var kind: Kind?
    /// Metadata the filter removes; the description is the words the user is told.
    public enum Removed: String, Sendable, Hashable, Comparable, CustomStringConvertible {
        case gpsLocation = "GPS location"
        case xmpLocation = "XMP location"
        case iptcPlaceNames = "IPTC place names"
        case pngTextChunks = "PNG text chunks"

        public var description: String { rawValue }
        public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    /// What was removed.
    public private(set) var removed: Set<Removed> = []
    /// The JPEG's metadata segments did not fit in the window the filter reads: it could not check for location.
    public private(set) var uncheckable = false
    private var head: [UInt8] = []
    private var headDone = false
    // PNG state
    private var pngPending: [UInt8] = []
    private var pngSkip = 0
    private var pngPass = 0
    /// Where the JPEG stream stands after the first image's metadata: looking for an image's end marker, just past
    /// one, or holding the start of an appended image.
    private var tail = Tail.scanning(afterFF: false)
    private enum Tail: Sendable {
        case scanning(afterFF: Bool)
        case afterEnd([UInt8])
        case appended([UInt8])
    }

    static let jpegWindow = 512 * 1024

    public init() {}

    /// Filtered bytes for `bytes`; some may be held back until more arrive or `finish`.
    public mutating func update(_ bytes: [UInt8]) -> [UInt8] {
        if kind == nil {
            head += bytes
            guard head.count >= 8 else { return [] }
            kind = switch ContentFormat.detect(head) {
            case .jpeg: .jpeg
            case .png: .png
            default: .other
            }
            let first = head
            head = []
            return route(first)
        }
        return route(bytes)
    }

    /// Ends the stream and returns the bytes still held back.
    public mutating func finish() -> [UInt8] {
        if kind == nil {
            kind = .other
            let rest = head
            head = []
            return rest
        }
        switch kind! {
        case .jpeg where !headDone:
            headDone = true
            var window = head
            head = []
            return clean(&window, complete: true) + finishTail()
        case .jpeg:
            return finishTail()
        case .png:
            let rest = pngPending
            pngPending = []
            return rest
        default:
            return []
        }
    }

    private mutating func route(_ bytes: [UInt8]) -> [UInt8] {
        switch kind! {
        case .other: return bytes
        case .jpeg:
            if headDone { return scanTail(bytes[...]) }
            head += bytes
            guard head.count >= Self.jpegWindow else { return [] }
            headDone = true
            var window = head
            head = []
            return clean(&window, complete: false)
        case .png:
            return png(bytes)
        }
    }

    // MARK: - PNG

    private mutating func png(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var input = bytes[...]
        while !input.isEmpty {
            if pngPass > 0 {
                let n = min(pngPass, input.count)
                out += input.prefix(n)
                input = input.dropFirst(n)
                pngPass -= n
                continue
            }
            if pngSkip > 0 {
                let n = min(pngSkip, input.count)
                input = input.dropFirst(n)
                pngSkip -= n
                continue
            }
            // Collect the signature (first 8 bytes) or a chunk's length and type.
            let needed = (out.isEmpty && pngPending.isEmpty && !sawSignature) ? 8 : 8
            let take = min(needed - pngPending.count, input.count)
            pngPending += input.prefix(take)
            input = input.dropFirst(take)
            guard pngPending.count == needed else { continue }
            if !sawSignature {
                sawSignature = true
                out += pngPending
                pngPending = []
                continue
            }
            let length = Int(pngPending[0]) << 24 | Int(pngPending[1]) << 16 | Int(pngPending[2]) << 8 | Int(pngPending[3])
            let type = String(decoding: pngPending[4..<8], as: UTF8.self)
            if ["tEXt", "zTXt", "iTXt", "eXIf"].contains(type) {
                removed.insert(.pngTextChunks)
                pngSkip = length + 4  // data and CRC
            } else {
                out += pngPending
                pngPass = length + 4
            }
            pngPending = []
        }
        return out
    }

    private var sawSignature = false

    // MARK: - JPEG

    /// Cleans the window that starts an image (at its start-of-image marker) and returns it, the part after its
    /// metadata run through the end-marker scan.
    private mutating func clean(_ window: inout [UInt8], complete: Bool) -> [UInt8] {
        switch Self.cleanSegments(&window) {
        case .done(let found, let imageData):
            removed.formUnion(found)
            tail = .scanning(afterFF: false)
            return Array(window[..<imageData]) + scanTail(window[imageData...])
        case .ranOut(let found):
            removed.formUnion(found)
            // The whole file was seen: a JPEG without a scan has nothing more to check.
            if !complete { uncheckable = true }
            tail = .scanning(afterFF: false)
            return window
        }
    }

    /// Passes bytes after an image's metadata on, looking for its end-of-image marker (in entropy-coded data a 0xFF
    /// is always followed by 0x00 or a restart marker, so FF D9 is the end); an image that starts right after it is
    /// held until its metadata can be cleaned.
    private mutating func scanTail(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        var input = bytes
        while !input.isEmpty {
            switch tail {
            case .scanning(let afterFF):
                if afterFF {
                    let byte = input.removeFirst()
                    out.append(byte)
                    tail = byte == 0xD9 ? .afterEnd([]) : .scanning(afterFF: byte == 0xFF)
                    continue
                }
                guard let marker = input.firstIndex(of: 0xFF) else {
                    out += input
                    input = []
                    continue
                }
                out += input[...marker]
                input = input[(marker + 1)...]
                tail = .scanning(afterFF: true)
            case .afterEnd(var pending):
                pending.append(input.removeFirst())
                guard pending.count == 2 else {
                    tail = .afterEnd(pending)
                    continue
                }
                if pending == [0xFF, 0xD8] {
                    tail = .appended(pending)
                } else {
                    out += pending
                    tail = .scanning(afterFF: pending[1] == 0xFF)
                }
            case .appended(var window):
                let take = min(Self.jpegWindow - window.count, input.count)
                window += input.prefix(take)
                input = input.dropFirst(take)
                guard window.count >= Self.jpegWindow else {
                    tail = .appended(window)
                    continue
                }
                out += clean(&window, complete: false)
            }
        }
        return out
    }

    /// What the end-marker scan still holds when the input ends.
    private mutating func finishTail() -> [UInt8] {
        switch tail {
        case .scanning: return []
        case .afterEnd(let pending):
            tail = .scanning(afterFF: false)
            return pending
        case .appended(var window):
            tail = .scanning(afterFF: false)
            return clean(&window, complete: true) + finishTail()
        }
    }

    /// `done` carries where the image data (or the end) begins: the first byte the metadata walk did not judge.
    enum Scan { case done(Set<Removed>, imageData: Int), ranOut(Set<Removed>) }

    /// Walks the segments before the image data: empties the GPS directory of every EXIF APP1 segment and blanks XMP
    /// packets that name GPS properties.
    static func cleanSegments(_ window: inout [UInt8]) -> Scan {
        var found: Set<Removed> = []
        var position = 2  // after SOI
        while position + 4 <= window.count {
            guard window[position] == 0xFF else { return .done(found, imageData: position) }  // not a marker: not ours to judge
            let marker = window[position + 1]
            if marker == 0xFF { position += 1; continue }  // fill byte
            if marker == 0xDA || marker == 0xD9 { return .done(found, imageData: position) }  // image data or end
            if (0xD0...0xD7).contains(marker) || marker == 0x01 { position += 2; continue }  // no length
            let length = Int(window[position + 2]) << 8 | Int(window[position + 3])
            guard length >= 2 else { return .done(found, imageData: position) }  // malformed: leave it as it is
            let segment = (position + 4)..<(position + 2 + length)
            guard segment.upperBound <= window.count else { return .ranOut(found) }
            if marker == 0xE1 {
                let exifHeader = Array("Exif\0\0".utf8), xmpHeader = Array("http://ns.adobe.com/xap/1.0/\0".utf8)
                if window[segment].starts(with: exifHeader), emptyGPS(in: &window, tiff: segment.lowerBound + 6, end: segment.upperBound) {
                    found.insert(.gpsLocation)
                }
                if window[segment].starts(with: xmpHeader), window[segment].firstRange(of: Array("GPS".utf8)) != nil {
                    for index in (segment.lowerBound + xmpHeader.count)..<segment.upperBound { window[index] = 0x20 }
                    found.insert(.xmpLocation)
                }
            }
            // Photoshop image resources, where IPTC keeps place names: zeroed after the header (no "8BIM" remains,
            // so readers find no resources; the segment keeps its size).
            let photoshopHeader = Array("Photoshop 3.0\0".utf8)
            if marker == 0xED, window[segment].starts(with: photoshopHeader),
                window[(segment.lowerBound + photoshopHeader.count)..<segment.upperBound].contains(where: { $0 != 0 })
            {
                for index in (segment.lowerBound + photoshopHeader.count)..<segment.upperBound { window[index] = 0 }
                found.insert(.iptcPlaceNames)
            }
            position = segment.upperBound
        }
        return .ranOut(found)
    }

    /// Empties the GPS IFD of the EXIF APP1 segment in `window`; true if there was one with entries.
    static func emptyGPS(_ window: inout [UInt8]) -> Bool {
        if case .done(let found, _) = cleanSegments(&window) { return found.contains(.gpsLocation) }
        return false
    }

    private static func emptyGPS(in window: inout [UInt8], tiff: Int, end: Int) -> Bool {
        guard tiff + 8 <= end else { return false }
        let little = window[tiff] == 0x49 && window[tiff + 1] == 0x49
        guard little || (window[tiff] == 0x4D && window[tiff + 1] == 0x4D) else { return false }
        func u16(_ at: Int) -> Int? {
            guard at >= tiff, at + 2 <= end else { return nil }
            return little ? Int(window[at]) | Int(window[at + 1]) << 8 : Int(window[at]) << 8 | Int(window[at + 1])
        }
        func u32(_ at: Int) -> Int? {
            guard at >= tiff, at + 4 <= end else { return nil }
            let b = (0..<4).map { Int(window[at + $0]) }
            return little ? b[0] | b[1] << 8 | b[2] << 16 | b[3] << 24 : b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3]
        }
        guard let ifd0Offset = u32(tiff + 4), let count = u16(tiff + ifd0Offset) else { return false }
        var gpsOffset: Int?
        for index in 0..<count {
            let entry = tiff + ifd0Offset + 2 + 12 * index
            guard let tag = u16(entry) else { return false }
            if tag == 0x8825 { gpsOffset = u32(entry + 8) }
        }
        guard let gpsOffset, let gpsCount = u16(tiff + gpsOffset), gpsCount > 0 else { return false }
        let typeSizes = [1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 7: 1, 9: 4, 10: 8]
        for index in 0..<gpsCount {
            let entry = tiff + gpsOffset + 2 + 12 * index
            guard entry + 12 <= end, let type = u16(entry + 2), let components = u32(entry + 4) else { break }
            let size = (typeSizes[type] ?? 8) * components  // an unknown type is taken as the widest
            // Values longer than 4 bytes live elsewhere in the TIFF block: overwrite them too.
            if size > 4, let valueOffset = u32(entry + 8), tiff + valueOffset + size <= end, valueOffset >= 8 {
                for i in 0..<size { window[tiff + valueOffset + i] = 0 }
            }
            for i in 0..<12 { window[entry + i] = 0 }
        }
        // An empty directory: count 0 (its next-IFD pointer, already past the zeroed entries, stays as it was).
        window[tiff + gpsOffset] = 0
        window[tiff + gpsOffset + 1] = 0
        return true
    }
}
