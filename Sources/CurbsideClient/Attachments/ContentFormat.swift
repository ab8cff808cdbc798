/// What a file is, told from its first bytes rather than its name (spec/attachments.md §Privacy before encryption).
///
/// `detect(_:)` needs at most the first `ContentFormat.headLength` bytes; a shorter head is judged on what it holds.
/// It returns nil for content it does not recognise (text, an archive, random bytes).
public enum ContentFormat: Sendable, Hashable, CaseIterable {
    case jpeg, png, webp, heic, heif, avif, tiff, gif, bmp, dicom, pdf, jpeg2000, jpegXL

    /// How many leading bytes `detect` may look at: DICOM's marker ends at byte 132, an ftyp box lists its brands
    /// within its first few dozen bytes.
    public static let headLength = 4096

    /// The media type recorded in the attachment descriptor.
    public var mediaType: String {
        switch self {
        case .jpeg: "image/jpeg"
        case .png: "image/png"
        case .webp: "image/webp"
        case .heic: "image/heic"
        case .heif: "image/heif"
        case .avif: "image/avif"
        case .tiff: "image/tiff"
        case .gif: "image/gif"
        case .bmp: "image/bmp"
        case .dicom: "application/dicom"
        case .pdf: "application/pdf"
        case .jpeg2000: "image/jp2"
        case .jpegXL: "image/jxl"
        }
    }

    /// The name people know it by, for messages.
    public var name: String {
        switch self {
        case .jpeg: "JPEG"
        case .png: "PNG"
        case .webp: "WebP"
        case .heic: "HEIC"
        case .heif: "HEIF"
        case .avif: "AVIF"
        case .tiff: "TIFF (or DNG)"
        case .gif: "GIF"
        case .bmp: "BMP"
        case .dicom: "DICOM"
        case .pdf: "PDF"
        case .jpeg2000: "JPEG 2000"
        case .jpegXL: "JPEG XL"
        }
    }

    /// Whether Curbside removes this format's location metadata (JPEG and PNG); every other format is refused
    /// unless the user keeps metadata on purpose.
    public var canBeCleaned: Bool { self == .jpeg || self == .png }

    /// The format a file name claims by its extension, if it names one of these formats.
    public init?(claimedBy fileName: String) {
        let dot = fileName.lastIndex(of: ".")
        guard let dot else { return nil }
        switch fileName[fileName.index(after: dot)...].lowercased() {
        case "jpg", "jpeg", "jpe", "jfif": self = .jpeg
        case "png": self = .png
        case "webp": self = .webp
        case "heic": self = .heic
        case "heif", "hif": self = .heif
        case "avif": self = .avif
        case "tif", "tiff", "dng": self = .tiff
        case "gif": self = .gif
        case "bmp", "dib": self = .bmp
        case "dcm", "dicom": self = .dicom
        case "pdf": self = .pdf
        case "jp2", "j2k", "jpf", "jpx": self = .jpeg2000
        case "jxl": self = .jpegXL
        default: return nil
        }
    }

    /// The format of a file whose first bytes are `head`, or nil if none of these.
    public static func detect(_ head: some Collection<UInt8>) -> ContentFormat? {
        let bytes = Array(head.prefix(headLength))
        func at(_ offset: Int, _ signature: [UInt8]) -> Bool {
            bytes.count >= offset + signature.count && bytes[offset..<(offset + signature.count)].elementsEqual(signature)
        }
        func at(_ offset: Int, _ ascii: String) -> Bool { at(offset, Array(ascii.utf8)) }

        if at(0, [0xFF, 0xD8, 0xFF]) { return .jpeg }
        if at(0, [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        if at(0, "RIFF"), at(8, "WEBP") { return .webp }
        if at(0, "GIF87a") || at(0, "GIF89a") { return .gif }
        // Classic and BigTIFF, both byte orders; DNG and most camera raw files are TIFF underneath.
        if at(0, [0x49, 0x49, 0x2A, 0x00]) || at(0, [0x4D, 0x4D, 0x00, 0x2A]) || at(0, [0x49, 0x49, 0x2B, 0x00])
            || at(0, [0x4D, 0x4D, 0x00, 0x2B])
        {
            return .tiff
        }
        if at(128, "DICM") { return .dicom }
        if at(0, "%PDF-") { return .pdf }
        if at(0, [0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50, 0x20, 0x20, 0x0D, 0x0A, 0x87, 0x0A]) || at(0, [0xFF, 0x4F, 0xFF, 0x51]) {
            return .jpeg2000
        }
        if at(0, [0x00, 0x00, 0x00, 0x0C, 0x4A, 0x58, 0x4C, 0x20, 0x0D, 0x0A, 0x87, 0x0A]) || at(0, [0xFF, 0x0A]) {
            return .jpegXL
        }
        if at(4, "ftyp") { return isoImage(bytes) }
        // "BM" alone is too common a start for text: the DIB header size that follows must be one BMP defines.
        if at(0, "BM"), bytes.count >= 18 {
            let dib = Int(bytes[14]) | Int(bytes[15]) << 8 | Int(bytes[16]) << 16 | Int(bytes[17]) << 24
            if [12, 16, 40, 52, 56, 64, 108, 124].contains(dib) { return .bmp }
        }
        return nil
    }

    /// HEIF-family images in an ISO base media file: the ftyp box's major brand, then its compatible brands.
    private static func isoImage(_ bytes: [UInt8]) -> ContentFormat? {
        let size = bytes.prefix(4).reduce(0) { $0 << 8 | Int($1) }
        let end = min(max(size, 16), bytes.count)
        var brands: [String] = []
        var offset = 8
        while offset + 4 <= end {
            if offset != 12 {  // bytes 12..<16 are the minor version, not a brand
                brands.append(String(decoding: bytes[offset..<(offset + 4)], as: UTF8.self))
            }
            offset += 4
        }
        let avif: Set = ["avif", "avis"]
        let heic: Set = ["heic", "heix", "heim", "heis", "hevc", "hevx", "hevm", "hevs"]
        let heif: Set = ["mif1", "msf1", "mif2"]
        if let major = brands.first {
            if avif.contains(major) { return .avif }
            if heic.contains(major) { return .heic }
        }
        guard brands.contains(where: { heif.contains($0) || avif.contains($0) || heic.contains($0) }) else {
            return nil  // a video (mp4, QuickTime) or another ISO file: not an image Curbside knows
        }
        if brands.contains(where: avif.contains) { return .avif }
        if brands.contains(where: heic.contains) { return .heic }
        return .heif
    }
}
