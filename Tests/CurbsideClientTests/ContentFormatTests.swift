import CurbsideTestSupport
import Foundation
import Testing

@testable import CurbsideClient

/// Files of each format, as their first bytes look; the WebP and PNG carry an EXIF GPS directory.
enum SampleFormats {
    static func le32(_ v: Int) -> [UInt8] { SamplePhoto.le32(v) }
    static let png = SamplePhoto.png(metadata: "eXIf", Array(SamplePhoto.exif.dropFirst(6)))
    static let webpWithGPS = SamplePhoto.webp
    static func ftyp(_ major: String, _ compatible: [String]) -> [UInt8] { SamplePhoto.ftyp(major, compatible) }

    static let samples: [(ContentFormat?, [UInt8])] = [
        (.jpeg, SamplePhoto.jpeg(scan: 100)),
        (.png, png),
        (.webp, webpWithGPS),
        (.heic, ftyp("heic", ["mif1", "heic"])),
        (.heif, ftyp("mif1", ["mif1", "miaf"])),
        (.avif, ftyp("avif", ["avif", "mif1", "miaf"])),
        (.avif, ftyp("mif1", ["mif1", "avif"])),
        (.tiff, Array("II*\0".utf8) + le32(8) + [UInt8](repeating: 0, count: 30)),
        (.tiff, [0x4D, 0x4D, 0x00, 0x2A, 0, 0, 0, 8] + [UInt8](repeating: 0, count: 30)),
        (.gif, Array("GIF89a".utf8) + [1, 0, 1, 0, 0, 0, 0]),
        (.bmp, Array("BM".utf8) + le32(70) + le32(0) + le32(54) + le32(40) + [UInt8](repeating: 0, count: 50)),
        (.dicom, [UInt8](repeating: 0, count: 128) + Array("DICM".utf8) + [2, 0, 0, 0]),
        (.pdf, Array("%PDF-1.7\n%âãÏÓ\n".utf8)),
        (.jpeg2000, [0, 0, 0, 0x0C, 0x6A, 0x50, 0x20, 0x20, 0x0D, 0x0A, 0x87, 0x0A, 0, 0, 0, 0x14]),
        (.jpegXL, [0xFF, 0x0A, 0xFA, 0x7F]),
        (nil, Array("This is the referral letter, not the photo.\n".utf8)),
        (nil, Array("BMI 31, BP 150/95: a text file that starts with BM".utf8)),
        (nil, ftyp("isom", ["isom", "mp41"])),  // an MP4 video
        (nil, [0x50, 0x4B, 0x03, 0x04, 20, 0, 0, 0]),  // a ZIP archive
    ]
}

@Suite("content formats")
struct ContentFormatTests {
    @Test(arguments: SampleFormats.samples.indices)
    func eachFormatIsToldByItsFirstBytes(_ index: Int) {
        let (expected, bytes) = SampleFormats.samples[index]
        #expect(ContentFormat.detect(bytes) == expected, "sample \(index)")
        // Only as many bytes as the format needs: a truncated head is never taken for something else.
        for length in [0, 1, 3, 7] where length < bytes.count {
            let format = ContentFormat.detect(bytes.prefix(length))
            #expect(format == nil || format == expected, "sample \(index) cut to \(length) bytes gave \(String(describing: format))")
        }
    }

    @Test func namesClaimTheirFormats() {
        #expect(ContentFormat(claimedBy: "photo.JPG") == .jpeg)
        #expect(ContentFormat(claimedBy: "fundus.webp") == .webp)
        #expect(ContentFormat(claimedBy: "scan.dng") == .tiff)
        #expect(ContentFormat(claimedBy: "notes.txt") == nil)
        #expect(ContentFormat(claimedBy: "README") == nil)
    }

    func admit(_ bytes: [UInt8], name: String, mediaType: String? = nil, keep: Bool = false) throws -> String {
        try AttachmentSource(path: "/nonexistent/\(name)", mediaType: mediaType, keepMetadata: keep).admit(head: bytes)
    }

    func refusal(_ bytes: [UInt8], name: String, mediaType: String? = nil, keep: Bool = false) -> ClientError? {
        #expect(throws: ClientError.self) { _ = try admit(bytes, name: name, mediaType: mediaType, keep: keep) }
    }

    /// The case: a WebP carrying EXIF GPS used to go out untouched because its name mapped to
    /// application/octet-stream. Its bytes say WebP now, under any name, and it is refused unless kept.
    @Test(arguments: ["fundus.webp", "fundus.jpg", "fundus", "fundus.bin"])
    func aWebPWithGPSIsRefusedUnderAnyName(_ name: String) throws {
        let bytes = SampleFormats.webpWithGPS
        #expect(bytes.firstRange(of: Array("EXIF".utf8)) != nil && bytes.firstRange(of: [0x25, 0x88]) != nil, "it carries a GPS IFD")
        let error = try #require(refusal(bytes, name: name))
        #expect(error.category == .usage)
        #expect(error.message.hasPrefix("\(name) is a WebP file"))
        #expect(error.message.contains("(whatever its name says)") == (name == "fundus.jpg"))
        #expect(error.hint?.contains("--keep-metadata") == true && error.hint?.contains("convert it to JPEG or PNG") == true)
        #expect(try admit(bytes, name: name, keep: true) == "image/webp", "kept on purpose, recorded as what it is")
    }

    @Test func everyFormatButJPEGAndPNGIsRefusedUnlessKept() throws {
        for (format, bytes) in SampleFormats.samples {
            guard let format else { continue }
            if format.canBeCleaned {
                #expect(try admit(bytes, name: "x") == format.mediaType)
            } else {
                #expect(refusal(bytes, name: "x")?.message.contains("is a \(format.name) file") == true)
                #expect(try admit(bytes, name: "x", keep: true) == format.mediaType)
            }
        }
    }

    @Test func anEmptyFileIsRefusedEvenWhenKept() {
        for keep in [false, true] {
            let error = refusal([], name: "photo.jpg", keep: keep)
            #expect(error?.message == "photo.jpg is empty; there is nothing to attach")
            #expect(error?.hint?.isEmpty == false)
        }
    }

    /// A file named as an image that is no image at all is refused, even with --keep-metadata: the user meant
    /// to attach something else, or the recipient would be told it is a photo.
    @Test func aTextFileNamedAsAnImageIsRefusedEvenWhenKept() {
        let text = Array("not really a photo\n".utf8)
        for keep in [false, true] {
            let error = refusal(text, name: "notreally.jpg", keep: keep)
            #expect(error?.message.hasPrefix("notreally.jpg is not a JPEG image") == true)
        }
        #expect(refusal(text, name: "letter.pdf", keep: true)?.message.hasPrefix("letter.pdf is not a PDF image") == true)
        #expect(refusal(text, name: "notes", mediaType: "image/png", keep: true)?.message.hasPrefix("notes is not a PNG image") == true)
    }

    @Test func unrecognisedContentGoesOnlyWhenKept() throws {
        let text = Array("Referral letter\n".utf8)
        let error = refusal(text, name: "letter.txt")
        #expect(error?.message.contains("cannot tell what kind of file letter.txt is") == true)
        #expect(try admit(text, name: "letter.txt", keep: true) == "application/octet-stream")
        #expect(try admit(text, name: "letter.txt", mediaType: "text/plain", keep: true) == "text/plain")
    }

    /// A PNG named .jpg is a PNG: cleaned as one and described as image/png (the name stays as the user gave it).
    @Test func aPNGNamedJPEGIsTreatedAsAPNG() throws {
        #expect(try admit(SampleFormats.png, name: "photo.jpg") == "image/png")
        #expect(try admit(SamplePhoto.jpeg(scan: 10), name: "photo.png") == "image/jpeg")
        let (out, removed) = MetadataFilterTests.filter(SampleFormats.png, step: 7)
        #expect(removed == [.pngTextChunks] && out.firstRange(of: Array("eXIf".utf8)) == nil)
    }

    /// Through the whole send path: a refused file leaves nothing behind, an admitted one is recorded with the
    /// detected media type.
    @Test func prepareRecordsTheDetectedTypeAndRefusesBeforeWriting() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("curbside-formats-\(UUID())")
        defer { try? FileManager.default.removeItem(at: directory) }
        let webp = try AttachmentClientTests.write(SampleFormats.webpWithGPS, "fundus.webp", in: directory)
        #expect(throws: ClientError.self) { _ = try AttachmentFiles.prepare(AttachmentSource(path: webp), into: webp + ".age") }
        #expect(!FileManager.default.fileExists(atPath: webp + ".age"))
        let png = try AttachmentClientTests.write(SampleFormats.png, "photo.jpg", in: directory)
        let prepared = try AttachmentFiles.prepare(AttachmentSource(path: png), into: png + ".age")
        #expect(prepared.mediaType == "image/png" && prepared.removedMetadata == [.pngTextChunks])
    }
}
