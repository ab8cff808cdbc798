/// Image files as their bytes look, for metadata and content-format tests: a JPEG-structured photo with an EXIF GPS
/// directory (the same layout as scripts/sample-photo.py), and the same GPS data in other formats.
public enum SamplePhoto {
    public static func le16(_ v: Int) -> [UInt8] { [UInt8(v & 255), UInt8(v >> 8 & 255)] }
    public static func le32(_ v: Int) -> [UInt8] { le16(v & 0xFFFF) + le16(v >> 16) }

    /// An EXIF APP1 payload: "Exif\0\0", then a little-endian TIFF block whose GPS directory holds 51° 30' N, W.
    public static var exif: [UInt8] {
        var tiff: [UInt8] = Array("II*\0".utf8) + le32(8)
        tiff += le16(1) + le16(0x8825) + le16(4) + le32(1) + le32(26) + le32(0)
        tiff += le16(3)
        tiff += le16(1) + le16(2) + le32(2) + Array("N\0\0\0".utf8)
        tiff += le16(2) + le16(5) + le32(3) + le32(26 + 2 + 36 + 4)
        tiff += le16(3) + le16(2) + le32(2) + Array("W\0\0\0".utf8)
        tiff += le32(0)
        tiff += [51, 1, 30, 1, 0, 1].flatMap(le32)
        return Array("Exif\0\0".utf8) + tiff
    }

    public static func jpeg(scan: Int = 50_000) -> [UInt8] {
        let exif = self.exif
        let comment = Array("curbside test photo".utf8)
        var data: [UInt8] = [0xFF, 0xD8, 0xFF, 0xE1] + [UInt8((exif.count + 2) >> 8), UInt8((exif.count + 2) & 255)] + exif
        data += [0xFF, 0xFE, 0, UInt8(comment.count + 2)] + comment
        data += [0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 0x3F, 0]
        data += (0..<scan).map { UInt8($0 * 7 % 251) }
        return data + [0xFF, 0xD9]
    }

    /// Offset of the TIFF header in `jpeg()`.
    public static let tiffStart = 4 + 2 + 6

    /// An extended WebP (VP8X with the EXIF flag) whose EXIF chunk holds the photo's GPS directory.
    public static var webp: [UInt8] {
        func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
            Array(type.utf8) + le32(data.count) + data + (data.count % 2 == 1 ? [0] : [])
        }
        let body = Array("WEBP".utf8) + chunk("VP8X", [0x08, 0, 0, 0, 15, 0, 0, 15, 0, 0])
            + chunk("VP8 ", [UInt8](repeating: 0x2A, count: 40)) + chunk("EXIF", Array(exif.dropFirst(6)))
        return Array("RIFF".utf8) + le32(body.count) + body
    }

    /// A PNG with one metadata chunk of type `type` (`tEXt`, `eXIf`, …) holding `data`, before its image data.
    public static func png(metadata type: String, _ data: [UInt8]) -> [UInt8] {
        func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
            [0, 0, UInt8(data.count >> 8), UInt8(data.count & 255)] + Array(type.utf8) + data + [1, 2, 3, 4]
        }
        return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", [UInt8](repeating: 1, count: 13))
            + chunk(type, data) + chunk("IDAT", [UInt8](repeating: 9, count: 500)) + chunk("IEND", [])
    }

    /// The start of an ISO media file: an ftyp box with `major` and `compatible` brands, then a `meta` box header.
    public static func ftyp(_ major: String, _ compatible: [String]) -> [UInt8] {
        let brands = Array(major.utf8) + [0, 0, 0, 0] + compatible.flatMap { Array($0.utf8) }
        let size = 8 + brands.count
        return [0, 0, UInt8(size >> 8), UInt8(size & 255)] + Array("ftyp".utf8) + brands + [0, 0, 0, 8] + Array("meta".utf8)
    }
}
