/// The frames of the relay protocol that exist so far, typed (spec/relay.md §Frame types).
///
/// Operations (register, prekeys, send, fetch, ack, attachments) take the type numbers from 0x0010 up and are
/// added with their specification.
public enum RelayMessage: Sendable, Hashable {
    /// Relay → client: a request failed, or (request id 0) the connection is being closed for this reason.
    case error(code: UInt16, detail: String)
    /// Relay → client, first frame of every connection: the login challenge.
    case challenge(LoginChallenge)
    /// Client → relay: the signed answer to the challenge.
    case login(LoginRequest)
    /// Relay → client: the login succeeded.
    case loginAccepted

    public enum FrameType: UInt16, Sendable {
        case error = 0x0001
        case challenge = 0x0002
        case login = 0x0003
        case loginAccepted = 0x0004
    }

    static let errorDetailBounds = 0...1024

    public var frameType: FrameType {
        switch self {
        case .error: .error
        case .challenge: .challenge
        case .login: .login
        case .loginAccepted: .loginAccepted
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
        case .loginAccepted:
            break
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
            case .loginAccepted:
                self = .loginAccepted
            }
            try reader.finish("\(type)")
        } catch {
            throw RelayError(.malformedFrame, "\(error)")
        }
    }
}
