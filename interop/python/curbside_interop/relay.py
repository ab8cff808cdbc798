"""Relay protocol frames, frame bodies, and the login and register signatures (spec/relay.md)."""

from dataclasses import dataclass
from typing import List, Optional

from . import ed25519
from . import encoding as enc
from .errors import CurbsideError, fail
from .structures import FAILURE_REASONS, MAX_ATTACHMENT_SIZE, OneTimePrekey, PrekeyBundle, SignedPrekey

DEFAULT_MAXIMUM_LENGTH = 4194304
ALPN = b"curbside/1"
LOGIN_LABEL = b"curbside/v1/relay-login\x00"
REGISTER_LABEL = b"curbside/v1/relay-register\x00"
BOUND_LOGIN_LABEL = b"curbside/v1/relay-login-bound\x00"
ENROLLMENT_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

# Frame types
ERROR, CHALLENGE, LOGIN, LOGIN_ACCEPTED = 0x0001, 0x0002, 0x0003, 0x0004
REGISTER, REGISTERED, PUBLISH_PREKEYS, PREKEYS_PUBLISHED = 0x0010, 0x0011, 0x0012, 0x0013
FETCH_BUNDLE, BUNDLE, SEND, STORED, FETCH, ENVELOPES = 0x0014, 0x0015, 0x0016, 0x0017, 0x0018, 0x0019
ACKNOWLEDGE, ACKNOWLEDGED, FETCH_NOTICES, NOTICES = 0x001A, 0x001B, 0x001C, 0x001D
ACKNOWLEDGE_NOTICES, NOTICES_ACKNOWLEDGED, PUSH_ENVELOPE, PUSH_NOTICE, PREKEYS_LOW = (
    0x001E, 0x001F, 0x0020, 0x0021, 0x0022)
OPEN_UPLOAD, UPLOAD_STATUS, UPLOAD_CHUNK, COMMIT_UPLOAD, DOWNLOAD, ATTACHMENT_DATA = (
    0x0023, 0x0024, 0x0025, 0x0026, 0x0027, 0x0028)
REJECT = 0x0029
CHECK_ENROLLMENT, ENROLLMENT_USABLE, ABANDON_UPLOAD, UPLOAD_ABANDONED = 0x002A, 0x002B, 0x002C, 0x002D
BOUND_LOGIN = 0x002E
COMMIT_UPLOAD_AS = 0x002F

UPLOADING, COMPLETE = 1, 2
NOTICE_DELIVERED_TO_DEVICE, NOTICE_EXPIRED, NOTICE_REJECTED = 1, 2, 3
MAX_ENVELOPE = 2097196
MAX_CHUNK = 1048576


# --- bodies ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ErrorBody:
    code: int
    detail: str = ""

    @staticmethod
    def read(r):
        return ErrorBody(r.u16("error.code"), r.text(0, 1024, "error.detail"))

    def encode(self):
        return enc.u16(self.code) + enc.text(self.detail, 0, 1024)


@dataclass(frozen=True)
class Challenge:
    nonce: bytes
    version: int = 1

    @staticmethod
    def read(r):
        version = r.version((1,), "challenge.version")
        return Challenge(r.fixed(32, "challenge.nonce"), version)

    def encode(self):
        return enc.u8(self.version) + enc.fixed(self.nonce, 32)


@dataclass(frozen=True)
class Login:
    handle: bytes
    signature: bytes

    @staticmethod
    def read(r):
        return Login(r.handle("login.handle"), r.fixed(64, "login.signature"))

    def encode(self):
        return enc.handle(self.handle) + enc.fixed(self.signature, 64)


@dataclass(frozen=True)
class BoundLogin(Login):
    """relay.md §Bound login: the body is a Login's, the signature covers the channel binding alone."""

    @staticmethod
    def read(r):
        return BoundLogin(r.handle("bound_login.handle"), r.fixed(64, "bound_login.signature"))


@dataclass(frozen=True)
class Register:
    handle: bytes
    identity_key: bytes
    enrollment_code: bytes
    signature: bytes

    @staticmethod
    def read(r):
        handle = r.handle("register.handle")
        where = r.where("register.identity_key")
        key = r.fixed(32, "register.identity_key")
        if not ed25519.is_valid_public_key(key):
            fail("invalid_public_key", where)  # keys.md §Validating an identity key; a frame: malformed_frame
        return Register(handle, key, r.fixed(20, "register.enrollment_code"), r.fixed(64, "register.signature"))

    def encode(self):
        return (enc.handle(self.handle) + enc.fixed(self.identity_key, 32) + enc.fixed(self.enrollment_code, 20)
                + enc.fixed(self.signature, 64))


@dataclass(frozen=True)
class CheckEnrollment:
    """relay.md §Checking an enrollment code: would `register` take this code for this handle?"""
    handle: bytes
    enrollment_code: bytes

    @staticmethod
    def read(r):
        return CheckEnrollment(r.handle("check_enrollment.handle"), r.fixed(20, "check_enrollment.enrollment_code"))

    def encode(self):
        return enc.handle(self.handle) + enc.fixed(self.enrollment_code, 20)


@dataclass(frozen=True)
class PublishPrekeys:
    signed_prekey: Optional[SignedPrekey]
    one_time_prekeys: List[OneTimePrekey]

    @staticmethod
    def read(r):
        return PublishPrekeys(r.optional(SignedPrekey.read, "publish.signed_prekey"),
                              r.list(OneTimePrekey.read, 0, 100, "publish.one_time_prekeys"))

    def encode(self):
        return (enc.optional(self.signed_prekey, SignedPrekey.encode)
                + enc.list_(self.one_time_prekeys, OneTimePrekey.encode, 0, 100))


def _unique(ids):
    if len(set(ids)) != len(ids):
        fail("invalid_value", "attachment named twice")


@dataclass(frozen=True)
class Send:
    recipient: bytes
    envelope: bytes
    attachments: List[bytes]

    @staticmethod
    def read(r):
        recipient = r.handle("send.recipient")
        envelope = r.opaque(1, MAX_ENVELOPE, "send.envelope")
        attachments = r.list(lambda rr: rr.fixed(32), 0, 16, "send.attachments")
        _unique(attachments)
        return Send(recipient, envelope, attachments)

    def encode(self):
        _unique(self.attachments)
        return (enc.handle(self.recipient) + enc.opaque(self.envelope, 1, MAX_ENVELOPE)
                + enc.list_(self.attachments, lambda a: enc.fixed(a, 32), 0, 16))


@dataclass(frozen=True)
class Stored:
    envelope_id: bytes
    stored_at: int
    expires_at: int

    @staticmethod
    def read(r):
        return Stored(r.fixed(32), r.time("stored.stored_at"), r.time("stored.expires_at"))

    def encode(self):
        return enc.fixed(self.envelope_id, 32) + enc.u64(self.stored_at) + enc.u64(self.expires_at)


@dataclass(frozen=True)
class Fetch:
    after: int
    limit: int

    @staticmethod
    def read(r):
        after = r.u64("fetch.after")
        where = r.where("fetch.limit")
        limit = r.u16("fetch.limit")
        if not 1 <= limit <= 1000:
            fail("invalid_value", where)
        return Fetch(after, limit)

    def encode(self):
        if not 1 <= self.limit <= 1000:
            fail("invalid_value", "fetch.limit")
        return enc.u64(self.after) + enc.u16(self.limit)


@dataclass(frozen=True)
class DeliveredEnvelope:
    sequence: int
    envelope_id: bytes
    sender: bytes
    stored_at: int
    envelope: bytes

    @staticmethod
    def read(r):
        return DeliveredEnvelope(r.u64(), r.fixed(32), r.handle("delivered.sender"), r.time("delivered.stored_at"),
                                 r.opaque(1, MAX_ENVELOPE, "delivered.envelope"))

    def encode(self):
        return (enc.u64(self.sequence) + enc.fixed(self.envelope_id, 32) + enc.handle(self.sender)
                + enc.u64(self.stored_at) + enc.opaque(self.envelope, 1, MAX_ENVELOPE))


@dataclass(frozen=True)
class Notice:
    sequence: int
    kind: int
    envelope_id: bytes
    recipient: bytes
    at: int
    reason: int = None  # a FailureReason, exactly when kind is rejected

    @staticmethod
    def read(r):
        sequence = r.u64()
        kind = r.enum((NOTICE_DELIVERED_TO_DEVICE, NOTICE_EXPIRED, NOTICE_REJECTED), "notice.kind")
        envelope_id, recipient, at = r.fixed(32), r.handle("notice.recipient"), r.time("notice.at")
        reason = r.enum(tuple(FAILURE_REASONS.values()), "notice.reason") if kind == NOTICE_REJECTED else None
        return Notice(sequence, kind, envelope_id, recipient, at, reason)

    def encode(self):
        return (enc.u64(self.sequence) + enc.u8(self.kind) + enc.fixed(self.envelope_id, 32)
                + enc.handle(self.recipient) + enc.u64(self.at)
                + (enc.u8(self.reason) if self.kind == NOTICE_REJECTED else b""))


@dataclass(frozen=True)
class Rejection:
    envelope_id: bytes
    reason: int  # a FailureReason (envelope.md §Receipt)

    @staticmethod
    def read(r):
        return Rejection(r.fixed(32, "rejection.envelope_id"), r.enum(tuple(FAILURE_REASONS.values()), "rejection.reason"))

    def encode(self):
        return enc.fixed(self.envelope_id, 32) + enc.u8(self.reason)


def _size(r, name):
    where = r.where(name)
    size = r.u64(name)
    if not 1 <= size <= MAX_ATTACHMENT_SIZE:
        fail("invalid_value", where)
    return size


@dataclass(frozen=True)
class OpenUpload:
    attachment_id: bytes
    size: int

    @staticmethod
    def read(r):
        return OpenUpload(r.fixed(32), _size(r, "open_upload.size"))

    def encode(self):
        return enc.fixed(self.attachment_id, 32) + enc.u64(self.size)


@dataclass(frozen=True)
class CommitUploadAs:
    """relay.md §Attachments: an upload opened under a provisional id, named by its SHA-256 once whole."""
    upload_id: bytes
    attachment_id: bytes
    size: int

    @staticmethod
    def read(r):
        return CommitUploadAs(r.fixed(32), r.fixed(32), _size(r, "commit_upload_as.size"))

    def encode(self):
        return enc.fixed(self.upload_id, 32) + enc.fixed(self.attachment_id, 32) + enc.u64(self.size)


@dataclass(frozen=True)
class UploadStatus:
    size: int
    held: int
    state: int
    expires_at: int

    @staticmethod
    def read(r):
        size = r.u64("upload_status.size")
        where = r.where("upload_status.held")
        held = r.u64()
        if held > size:
            fail("invalid_value", where)
        return UploadStatus(size, held, r.enum((UPLOADING, COMPLETE), "upload_status.state"), r.time("upload_status.expires_at"))

    def encode(self):
        return enc.u64(self.size) + enc.u64(self.held) + enc.u8(self.state) + enc.u64(self.expires_at)


@dataclass(frozen=True)
class UploadChunk:
    attachment_id: bytes
    offset: int
    data: bytes

    @staticmethod
    def read(r):
        return UploadChunk(r.fixed(32), r.u64(), r.opaque(1, MAX_CHUNK, "upload_chunk.data"))

    def encode(self):
        return enc.fixed(self.attachment_id, 32) + enc.u64(self.offset) + enc.opaque(self.data, 1, MAX_CHUNK)


@dataclass(frozen=True)
class Download:
    attachment_id: bytes
    offset: int
    length: int

    @staticmethod
    def read(r):
        aid, offset = r.fixed(32), r.u64()
        where = r.where("download.length")
        length = r.u32()
        if not 1 <= length <= MAX_CHUNK:
            fail("invalid_value", where)
        return Download(aid, offset, length)

    def encode(self):
        if not 1 <= self.length <= MAX_CHUNK:
            fail("invalid_value", "download.length")
        return enc.fixed(self.attachment_id, 32) + enc.u64(self.offset) + enc.u32(self.length)


@dataclass(frozen=True)
class AttachmentData:
    size: int
    offset: int
    data: bytes

    @staticmethod
    def read(r):
        size, offset = r.u64(), r.u64()
        where = r.where("attachment_data.data")
        data = r.opaque(0, MAX_CHUNK, "attachment_data.data")
        if offset + len(data) > size:
            fail("invalid_value", where)
        return AttachmentData(size, offset, data)

    def encode(self):
        return enc.u64(self.size) + enc.u64(self.offset) + enc.opaque(self.data, 0, MAX_CHUNK)


def _empty(r):
    return None


def _u16(r):
    return r.u16()


def _u32(r):
    return r.u32()


def _u64(r):
    return r.u64()


def _handle(r):
    return r.handle("handle")


def _ids(r):
    return r.list(lambda rr: rr.fixed(32), 1, 1000, "acknowledge.ids")


def _envelope_list(r):
    return r.list(DeliveredEnvelope.read, 0, 1000, "envelopes")


def _notice_list(r):
    return r.list(Notice.read, 0, 1000, "notices")


def _rejections(r):
    return r.list(Rejection.read, 1, 1000, "reject")


#: frame type -> (name, body reader)
FRAME_TYPES = {
    ERROR: ("error", ErrorBody.read),
    CHALLENGE: ("challenge", Challenge.read),
    LOGIN: ("login", Login.read),
    LOGIN_ACCEPTED: ("login_accepted", _empty),
    REGISTER: ("register", Register.read),
    REGISTERED: ("registered", _empty),
    PUBLISH_PREKEYS: ("publish_prekeys", PublishPrekeys.read),
    PREKEYS_PUBLISHED: ("prekeys_published", _u32),
    FETCH_BUNDLE: ("fetch_bundle", _handle),
    BUNDLE: ("bundle", PrekeyBundle.read),
    SEND: ("send", Send.read),
    STORED: ("stored", Stored.read),
    FETCH: ("fetch", Fetch.read),
    ENVELOPES: ("envelopes", _envelope_list),
    ACKNOWLEDGE: ("acknowledge", _ids),
    ACKNOWLEDGED: ("acknowledged", _u16),
    FETCH_NOTICES: ("fetch_notices", _u64),
    NOTICES: ("notices", _notice_list),
    ACKNOWLEDGE_NOTICES: ("acknowledge_notices", _u64),
    NOTICES_ACKNOWLEDGED: ("notices_acknowledged", _empty),
    PUSH_ENVELOPE: ("push_envelope", DeliveredEnvelope.read),
    PUSH_NOTICE: ("push_notice", Notice.read),
    PREKEYS_LOW: ("prekeys_low", _u32),
    OPEN_UPLOAD: ("open_upload", OpenUpload.read),
    UPLOAD_STATUS: ("upload_status", UploadStatus.read),
    UPLOAD_CHUNK: ("upload_chunk", UploadChunk.read),
    COMMIT_UPLOAD: ("commit_upload", lambda r: r.fixed(32)),
    DOWNLOAD: ("download", Download.read),
    ATTACHMENT_DATA: ("attachment_data", AttachmentData.read),
    REJECT: ("reject", _rejections),
    CHECK_ENROLLMENT: ("check_enrollment", CheckEnrollment.read),
    ENROLLMENT_USABLE: ("enrollment_usable", _empty),
    ABANDON_UPLOAD: ("abandon_upload", lambda r: r.fixed(32, "abandon_upload.attachment_id")),
    UPLOAD_ABANDONED: ("upload_abandoned", _empty),
    BOUND_LOGIN: ("bound_login", BoundLogin.read),
    COMMIT_UPLOAD_AS: ("commit_upload_as", CommitUploadAs.read),
}


# --- frames ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Frame:
    type: int
    request_id: int
    body: bytes

    def encode(self) -> bytes:
        return enc.u32(6 + len(self.body)) + enc.u16(self.type) + enc.u32(self.request_id) + self.body


def encode_frame(frame_type: int, request_id: int, body: bytes = b"") -> bytes:
    return Frame(frame_type, request_id, body).encode()


def decode_body(frame_type: int, body: bytes):
    """The body as one value of its type: unknown_frame_type, or malformed_frame for anything that does not
    decode or leaves bytes over."""
    entry = FRAME_TYPES.get(frame_type)
    if entry is None:
        fail("unknown_frame_type", "type 0x%04x" % frame_type)
    try:
        return enc.decode_top(body, entry[1])
    except CurbsideError as e:
        fail("malformed_frame", f"{entry[0]}: {e}")


def check_length(length: int, maximum: int) -> None:
    if length > maximum:
        fail("frame_too_large", f"length {length}")
    if length < 6:
        fail("malformed_frame", f"length {length}")


def iter_frames(stream: bytes, maximum: int = DEFAULT_MAXIMUM_LENGTH):
    """Yield the frames of a complete stream as a receiver reads them. A stream ending inside a frame is
    malformed_frame; the length is checked as soon as its four bytes are there."""
    pos = 0
    while pos < len(stream):
        if len(stream) - pos < 4:
            fail("malformed_frame", "stream ends inside a length")
        length = int.from_bytes(stream[pos:pos + 4], "big")
        check_length(length, maximum)
        if len(stream) - pos - 4 < length:
            fail("malformed_frame", "stream ends inside a frame")
        frame_type = int.from_bytes(stream[pos + 4:pos + 6], "big")
        request_id = int.from_bytes(stream[pos + 6:pos + 10], "big")
        body = bytes(stream[pos + 10:pos + 4 + length])
        pos += 4 + length
        yield Frame(frame_type, request_id, body)


def split_frames(stream: bytes, maximum: int = DEFAULT_MAXIMUM_LENGTH) -> List[Frame]:
    return list(iter_frames(stream, maximum))


# --- login and registration ------------------------------------------------------------------------------------

def login_signed_bytes(nonce: bytes, channel_binding: bytes, handle: bytes) -> bytes:
    return LOGIN_LABEL + nonce + channel_binding + enc.opaque(handle, 1, 64)


def register_signed_bytes(nonce: bytes, channel_binding: bytes, handle: bytes, identity_key: bytes,
                          code: bytes) -> bytes:
    return (REGISTER_LABEL + nonce + channel_binding + enc.opaque(handle, 1, 64) + identity_key + code)


def make_login(identity_seed: bytes, handle: bytes, nonce: bytes, channel_binding: bytes) -> Login:
    return Login(handle, ed25519.sign(identity_seed, login_signed_bytes(nonce, channel_binding, handle)))


def verify_login(login: Login, registered_key: bytes, nonce: bytes, channel_binding: bytes) -> None:
    """What the relay checks: login_failed for any failure."""
    if not ed25519.verify(registered_key, login_signed_bytes(nonce, channel_binding, login.handle),
                          login.signature):
        fail("login_failed")


def bound_login_signed_bytes(channel_binding: bytes, handle: bytes) -> bytes:
    return BOUND_LOGIN_LABEL + channel_binding + enc.opaque(handle, 1, 64)


def make_bound_login(identity_seed: bytes, handle: bytes, channel_binding: bytes) -> BoundLogin:
    return BoundLogin(handle, ed25519.sign(identity_seed, bound_login_signed_bytes(channel_binding, handle)))


def verify_bound_login(login: BoundLogin, registered_key: bytes, channel_binding: bytes) -> None:
    """What the relay checks: login_failed for any failure."""
    if not ed25519.verify(registered_key, bound_login_signed_bytes(channel_binding, login.handle), login.signature):
        fail("login_failed")


def normalise_enrollment_code(text: str) -> bytes:
    """relay.md §Registration: drop '-' and spaces, upper-case, O->0, I and L->1."""
    code = text.replace("-", "").replace(" ", "").upper().replace("O", "0").replace("I", "1").replace("L", "1")
    if len(code) != 20 or any(c not in ENROLLMENT_ALPHABET for c in code):
        fail("enrollment_invalid", "not 20 code characters")
    return code.encode("ascii")


def make_register(identity_seed: bytes, handle: bytes, code: bytes, nonce: bytes,
                  channel_binding: bytes) -> Register:
    key = ed25519.public_key_from_seed(identity_seed)
    signature = ed25519.sign(identity_seed, register_signed_bytes(nonce, channel_binding, handle, key, code))
    return Register(handle, key, code, signature)


def verify_register(register: Register, nonce: bytes, channel_binding: bytes) -> None:
    signed = register_signed_bytes(nonce, channel_binding, register.handle, register.identity_key,
                                   register.enrollment_code)
    if not ed25519.verify(register.identity_key, signed, register.signature):
        fail("login_failed")
