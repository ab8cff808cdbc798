import ArgumentParser
import CurbsideClient
import CurbsideWire
import Foundation

/// `--image FILE` (repeatable), `--keep-metadata` and `--retries` for send and reply.
struct AttachmentOptions: ParsableArguments {
    @Option(name: .customLong("image"), help: ArgumentHelp("Attach an image (JPEG or PNG; other files need --keep-metadata); repeat for several.", valueName: "file"))
    var images: [String] = []
    @Flag(
        help: ArgumentHelp(
            "Send files as they are: keep JPEG GPS data and PNG text chunks (removed by default), and allow formats "
                + "Curbside cannot clean (WebP, HEIC, TIFF, DICOM, PDF, …), which are refused by default."
        )
    )
    var keepMetadata = false
    @Option(help: "Reconnect this many times when the connection drops during a transfer.") var retries: Int = 5

    func validate() throws {
        guard images.count <= 16 else { throw ValidationError("at most 16 --image files") }
        guard retries >= 0 else { throw ValidationError("--retries must be 0 or more") }
    }

    var sources: [AttachmentSource] { images.map { AttachmentSource(path: $0, keepMetadata: keepMetadata) } }

    func configure(_ client: Client) async {
        await client.setRetryLimit(retries)
    }
}
