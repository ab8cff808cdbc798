/// The frames of the relay protocol, typed (spec/relay.md §Frame types).
public enum RelayMessage: Sendable, Hashable {
    /// Relay → client: a request failed, or (request id 0) the connection is being closed for this reason.
    case error(code: UInt16, detail: String)
    /// Relay → client, first frame of every connection: the login challenge.
    case challenge(LoginChallenge)
    /// Client → relay: the signed answer to the challenge.
    case login(LoginRequest)
    /// Relay → client: the login succeeded.
    case loginAccepted
    /// Client → relay, instead of a login: register a handle with an enrollment code.
    case register(RegisterRequest)
    /// Relay → client: registered, and logged in as the new handle.
    case registered
    /// Client → relay: upload a signed prekey and/or one-time prekeys.
    case publishPrekeys(PrekeyUpload)
    /// Relay → client: stored; the number of one-time prekeys the relay now holds for the client.
    case prekeysPublished(oneTimePrekeysHeld: UInt32)
    /// Client → relay: a prekey bundle for a handle, please.
    case fetchBundle(Handle)
    /// Relay → client: the bundle (its one-time prekey, if any, will be handed to nobody else).
    case bundle(PrekeyBundle)
    /// Client → relay: store this envelope for a recipient.
    case send(SendRequest)
    /// Relay → client: durably stored (also the answer to a repeated send of the same bytes).
    case stored(StoredReceipt)
    /// Client → relay: envelopes for me after `after`, at most `limit`.
    case fetch(after: UInt64, limit: UInt16)
    /// Relay → client: pending envelopes, oldest first.
    case envelopes([DeliveredEnvelope])
    /// Client → relay: these envelopes reached my device; delete them.
    case acknowledge([[UInt8]])
    /// Relay → client: how many of the acknowledged envelopes were deleted.
    case acknowledged(count: UInt16)
    /// Client → relay: my notices after `after`.
    case fetchNotices(after: UInt64)
    /// Relay → client: notices, oldest first.
    case notices([DeliveryNotice])
    /// Client → relay: I have my notices up to and including `through`; delete them.
    case acknowledgeNotices(through: UInt64)
    /// Relay → client: done.
    case noticesAcknowledged
    /// Relay → client, request id 0: an envelope for a connected recipient, as soon as it is stored.
    case pushEnvelope(DeliveredEnvelope)
    /// Relay → client, request id 0: a notice for a connected sender.
    case pushNotice(DeliveryNotice)
    /// Relay → client, request id 0: a bundle fetch left the client few one-time prekeys; it should publish more.
    case prekeysLow(oneTimePrekeysHeld: UInt32)
    /// Client → relay: start an upload, or ask where it stands.
    case openUpload(OpenUpload)
    /// Relay → client: where an upload stands (the answer to opening, a chunk, and a commit).
    case uploadStatus(UploadStatus)
    /// Client → relay: bytes of an upload at the offset the relay holds.
    case uploadChunk(UploadChunk)
    /// Client → relay: all bytes are up; check size and hash and keep the attachment.
    case commitUpload(attachmentID: [UInt8])
    /// Client → relay: a range of an attachment, please.
    case download(DownloadRequest)
    /// Relay → client: the range.
    case attachmentData(AttachmentData)
    /// Client → relay: these envelopes reached my device but cannot be opened there; delete them and tell each
    /// sender why (a `rejected` notice). Answered with `acknowledged`.
    case reject([Rejection])
    /// Client → relay, before login: would `register` accept this handle with this code? Changes nothing.
    case checkEnrollment(EnrollmentCheck)
    /// Relay → client: it would; the code is unused, unexpired, for this handle, and the handle is free.
    case enrollmentUsable
    /// Client → relay: the account no longer needs this upload (its consult was cancelled); delete it unless an
    /// envelope names it.
    case abandonUpload(attachmentID: [UInt8])
    /// Relay → client: done (whatever the relay held).
    case uploadAbandoned
    /// Client → relay, before the challenge is read: a login signed over the channel binding alone.
    case boundLogin(BoundLoginRequest)
    /// Client → relay: an upload opened under a provisional id is whole; check it against its SHA-256 and keep it
    /// under that name. Answered with `upload_status`.
    case commitUploadAs(CommitUploadAs)

    public enum FrameType: UInt16, Sendable {
        case error = 0x0001
        case challenge = 0x0002
        case login = 0x0003
        case loginAccepted = 0x0004
        case register = 0x0010
        case registered = 0x0011
        case publishPrekeys = 0x0012
        case prekeysPublished = 0x0013
        case fetchBundle = 0x0014
        case bundle = 0x0015
        case send = 0x0016
        case stored = 0x0017
        case fetch = 0x0018
        case envelopes = 0x0019
        case acknowledge = 0x001A
        case acknowledged = 0x001B
        case fetchNotices = 0x001C
        case notices = 0x001D
        case acknowledgeNotices = 0x001E
        case noticesAcknowledged = 0x001F
        case pushEnvelope = 0x0020
        case pushNotice = 0x0021
        case prekeysLow = 0x0022
        case openUpload = 0x0023
        case uploadStatus = 0x0024
        case uploadChunk = 0x0025
        case commitUpload = 0x0026
        case download = 0x0027
        case attachmentData = 0x0028
        case reject = 0x0029
        case checkEnrollment = 0x002A
        case enrollmentUsable = 0x002B
        case abandonUpload = 0x002C
        case uploadAbandoned = 0x002D
        case boundLogin = 0x002E
        case commitUploadAs = 0x002F
    }

    static let fetchLimitBounds = 1...1000
    static let listBounds = 0...1000
    static let acknowledgeBounds = 1...1000

    static let errorDetailBounds = 0...1024

    public var frameType: FrameType {
        switch self {
        case .error: .error
        case .challenge: .challenge
        case .login: .login
        case .loginAccepted: .loginAccepted
        case .register: .register
        case .registered: .registered
        case .publishPrekeys: .publishPrekeys
        case .prekeysPublished: .prekeysPublished
        case .fetchBundle: .fetchBundle
        case .bundle: .bundle
        case .send: .send
        case .stored: .stored
        case .fetch: .fetch
        case .envelopes: .envelopes
        case .acknowledge: .acknowledge
        case .acknowledged: .acknowledged
        case .fetchNotices: .fetchNotices
        case .notices: .notices
        case .acknowledgeNotices: .acknowledgeNotices
        case .noticesAcknowledged: .noticesAcknowledged
        case .pushEnvelope: .pushEnvelope
        case .pushNotice: .pushNotice
        case .prekeysLow: .prekeysLow
        case .openUpload: .openUpload
        case .uploadStatus: .uploadStatus
        case .uploadChunk: .uploadChunk
        case .commitUpload: .commitUpload
        case .download: .download
        case .attachmentData: .attachmentData
        case .reject: .reject
        case .checkEnrollment: .checkEnrollment
        case .enrollmentUsable: .enrollmentUsable
        case .abandonUpload: .abandonUpload
        case .uploadAbandoned: .uploadAbandoned
        case .boundLogin: .boundLogin
        case .commitUploadAs: .commitUploadAs
        }
    }

    /// An error frame for `error`, answering request `requestID` (0 when it answers none).
    public static func error(_ error: RelayError) -> RelayMessage {
        let detail = String(decoding: Array(error.detail.utf8.prefix(1024)), as: UTF8.self)
        return .error(code: error.code.rawValue, detail: detail)
    }

    /// The frame carrying this message.
    public func frame(requestID: UInt32) -> Frame {
        var writer = WireWriter()
        switch self {
        case .error(let code, let detail):
            writer.writeUInt16(code)
            writer.writeText(detail, bounds: Self.errorDetailBounds)
        case .challenge(let challenge):
            challenge.encode(to: &writer)
        case .login(let login):
            login.encode(to: &writer)
        case .boundLogin(let login):
            login.encode(to: &writer)
        case .loginAccepted, .registered, .enrollmentUsable, .uploadAbandoned:
            break
        case .register(let request):
            request.encode(to: &writer)
        case .publishPrekeys(let upload):
            upload.encode(to: &writer)
        case .prekeysPublished(let held):
            writer.writeUInt32(held)
        case .fetchBundle(let handle):
            handle.encode(to: &writer)
        case .bundle(let bundle):
            bundle.encode(to: &writer)
        case .send(let request):
            request.encode(to: &writer)
        case .stored(let receipt):
            receipt.encode(to: &writer)
        case .fetch(let after, let limit):
            writer.writeUInt64(after)
            writer.writeUInt16(limit)
        case .envelopes(let envelopes):
            writer.writeList(envelopes, count: Self.listBounds) { $1.encode(to: &$0) }
        case .acknowledge(let ids):
            writer.writeList(ids, count: Self.acknowledgeBounds) { $0.writeBytes($1) }
        case .acknowledged(let count):
            writer.writeUInt16(count)
        case .fetchNotices(let after):
            writer.writeUInt64(after)
        case .notices(let notices):
            writer.writeList(notices, count: Self.listBounds) { $1.encode(to: &$0) }
        case .acknowledgeNotices(let through):
            writer.writeUInt64(through)
        case .noticesAcknowledged:
            break
        case .pushEnvelope(let envelope):
            envelope.encode(to: &writer)
        case .pushNotice(let notice):
            notice.encode(to: &writer)
        case .prekeysLow(let held):
            writer.writeUInt32(held)
        case .openUpload(let request):
            request.encode(to: &writer)
        case .uploadStatus(let status):
            status.encode(to: &writer)
        case .uploadChunk(let chunk):
            chunk.encode(to: &writer)
        case .commitUploadAs(let commit):
            commit.encode(to: &writer)
        case .commitUpload(let id), .abandonUpload(let id):
            writer.writeBytes(id)
        case .download(let request):
            request.encode(to: &writer)
        case .attachmentData(let data):
            data.encode(to: &writer)
        case .reject(let rejections):
            writer.writeList(rejections, count: Self.acknowledgeBounds) { $1.encode(to: &$0) }
        case .checkEnrollment(let check):
            check.encode(to: &writer)
        }
        return Frame(type: frameType.rawValue, requestID: requestID, body: writer.bytes)
    }

    /// Decodes a frame's body as its type says.
    ///
    /// - Throws: `RelayError.unknownFrameType`, or `.malformedFrame` (with the decoder's field and offset in the detail)
    ///   when the body is not exactly one valid value of the type.
    public init(decoding frame: Frame) throws(RelayError) {
        guard let type = FrameType(rawValue: frame.type) else {
            throw RelayError(.unknownFrameType, "frame type 0x\(String(frame.type, radix: 16)) is unknown")
        }
        var reader = WireReader(frame.body)
        do throws(WireError) {
            switch type {
            case .error:
                let code = try reader.readUInt16("error.code")
                self = .error(code: code, detail: try reader.readText("error.detail", bounds: Self.errorDetailBounds))
            case .challenge:
                self = .challenge(try LoginChallenge(from: &reader, field: "challenge"))
            case .login:
                self = .login(try LoginRequest(from: &reader, field: "login"))
            case .boundLogin:
                self = .boundLogin(try BoundLoginRequest(from: &reader, field: "bound_login"))
            case .loginAccepted:
                self = .loginAccepted
            case .register:
                self = .register(try RegisterRequest(from: &reader, field: "register"))
            case .registered:
                self = .registered
            case .checkEnrollment:
                self = .checkEnrollment(try EnrollmentCheck(from: &reader, field: "check_enrollment"))
            case .enrollmentUsable:
                self = .enrollmentUsable
            case .abandonUpload:
                self = .abandonUpload(attachmentID: try reader.readBytes(count: 32, "abandon_upload.attachment_id"))
            case .uploadAbandoned:
                self = .uploadAbandoned
            case .publishPrekeys:
                self = .publishPrekeys(try PrekeyUpload(from: &reader, field: "publish_prekeys"))
            case .prekeysPublished:
                self = .prekeysPublished(oneTimePrekeysHeld: try reader.readUInt32("prekeys_published.held"))
            case .fetchBundle:
                self = .fetchBundle(try Handle(from: &reader, field: "fetch_bundle.handle"))
            case .bundle:
                self = .bundle(try PrekeyBundle(from: &reader, field: "bundle"))
            case .send:
                self = .send(try SendRequest(from: &reader, field: "send"))
            case .stored:
                self = .stored(try StoredReceipt(from: &reader, field: "stored"))
            case .fetch:
                let after = try reader.readUInt64("fetch.after")
                let limitOffset = reader.offset
                let limit = try reader.readUInt16("fetch.limit")
                guard Self.fetchLimitBounds.contains(Int(limit)) else {
                    throw WireError(.invalidValue, field: "fetch.limit", offset: limitOffset, detail: "limit \(limit) outside 1...1000")
                }
                self = .fetch(after: after, limit: limit)
            case .envelopes:
                self = .envelopes(
                    try reader.readList("envelopes", count: Self.listBounds) { (reader, index) throws(WireError) in
                        try DeliveredEnvelope(from: &reader, field: "envelopes[\(index)]")
                    }
                )
            case .acknowledge:
                self = .acknowledge(
                    try reader.readList("acknowledge", count: Self.acknowledgeBounds) { (reader, index) throws(WireError) in
                        try reader.readBytes(count: 32, "acknowledge[\(index)]")
                    }
                )
            case .acknowledged:
                self = .acknowledged(count: try reader.readUInt16("acknowledged.count"))
            case .fetchNotices:
                self = .fetchNotices(after: try reader.readUInt64("fetch_notices.after"))
            case .notices:
                self = .notices(
                    try reader.readList("notices", count: Self.listBounds) { (reader, index) throws(WireError) in
                        try DeliveryNotice(from: &reader, field: "notices[\(index)]")
                    }
                )
            case .acknowledgeNotices:
                self = .acknowledgeNotices(through: try reader.readUInt64("acknowledge_notices.through"))
            case .noticesAcknowledged:
                self = .noticesAcknowledged
            case .pushEnvelope:
                self = .pushEnvelope(try DeliveredEnvelope(from: &reader, field: "push_envelope"))
            case .pushNotice:
                self = .pushNotice(try DeliveryNotice(from: &reader, field: "push_notice"))
            case .prekeysLow:
                self = .prekeysLow(oneTimePrekeysHeld: try reader.readUInt32("prekeys_low.held"))
            case .openUpload:
                self = .openUpload(try OpenUpload(from: &reader, field: "open_upload"))
            case .uploadStatus:
                self = .uploadStatus(try UploadStatus(from: &reader, field: "upload_status"))
            case .uploadChunk:
                self = .uploadChunk(try UploadChunk(from: &reader, field: "upload_chunk"))
            case .commitUpload:
                self = .commitUpload(attachmentID: try reader.readBytes(count: 32, "commit_upload.attachment_id"))
            case .commitUploadAs:
                self = .commitUploadAs(try CommitUploadAs(from: &reader, field: "commit_upload_as"))
            case .download:
                self = .download(try DownloadRequest(from: &reader, field: "download"))
            case .attachmentData:
                self = .attachmentData(try AttachmentData(from: &reader, field: "attachment_data"))
            case .reject:
                self = .reject(
                    try reader.readList("reject", count: Self.acknowledgeBounds) { (reader, index) throws(WireError) in
                        try Rejection(from: &reader, field: "reject[\(index)]")
                    }
                )
            }
            try reader.finish("\(type)")
        } catch {
            throw RelayError(.malformedFrame, "\(error)")
        }
    }
}
