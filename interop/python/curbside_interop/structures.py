"""Every structure of spec/keys.md and spec/envelope.md, with decode (from a Reader) and encode."""

from dataclasses import dataclass, field
from typing import List, Optional

from . import ed25519
from . import encoding as enc
from .encoding import Reader, decode_top
from .errors import fail

# Enumerations
PREKEY_SIGNED, PREKEY_ONE_TIME = 1, 2
CONSULT, REPLY, RECEIPT = 1, 2, 3
ROUTINE, URGENT, EMERGENCY = 1, 2, 3
DELIVERED, READ, FAILED = 1, 2, 3
FAILURE_REASONS = {
    "undecryptable": 1, "bad_signature": 2, "attachment_unavailable": 3, "attachment_corrupt": 4,
    "unsupported_content": 5, "untrusted_sender": 6, "expired": 7, "other": 255,
}

MAX_ATTACHMENT_SIZE = 2**40
SUITE = 0x0001

SIGNED_PREKEY_LABEL = b"curbside/v1/signed-prekey\x00"
ONE_TIME_PREKEY_LABEL = b"curbside/v1/one-time-prekey\x00"
MESSAGE_LABEL = b"curbside/v1/message\x00"


def _key32(data, where):
    return enc.fixed(data, 32, where, error="invalid_key_length")


# --- Party -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Party:
    identity_key: bytes
    handle: bytes

    def __post_init__(self):
        _key32(self.identity_key, "party.identity_key")
        enc.check_handle(self.handle, "party.handle")

    @staticmethod
    def read(r: Reader) -> "Party":
        where = r.where("party.identity_key")
        key = r.fixed(32, "party.identity_key")
        if not ed25519.is_valid_public_key(key):
            fail("invalid_public_key", where)
        handle = r.handle("party.handle")
        return Party(key, handle)

    @staticmethod
    def from_values(identity_key: bytes, handle) -> "Party":
        """Read a party given as values (vectors, configuration): key length and point, then the handle."""
        if len(identity_key) != 32 or not ed25519.is_valid_public_key(identity_key):
            fail("invalid_public_key", "identity_key")
        return Party(bytes(identity_key), enc.handle_from_text(handle))

    def encode(self) -> bytes:
        return self.identity_key + enc.handle(self.handle)

    @property
    def handle_text(self) -> str:
        return self.handle.decode("ascii")


# --- Content ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Consult:
    subject: str
    urgency: int
    specialty: str
    question: str
    clinical_summary: str = ""

    @staticmethod
    def read(r: Reader) -> "Consult":
        subject = r.text(1, 256, "consult.subject")
        urgency = r.enum((ROUTINE, URGENT, EMERGENCY), "consult.urgency")
        specialty = r.text(1, 64, "consult.specialty")
        question = r.text(1, 16384, "consult.question")
        summary = r.text(0, 65535, "consult.clinical_summary")
        return Consult(subject, urgency, specialty, question, summary)

    def encode(self) -> bytes:
        if self.urgency not in (ROUTINE, URGENT, EMERGENCY):
            fail("unknown_enum", "consult.urgency")
        return (enc.text(self.subject, 1, 256, "consult.subject") + enc.u8(self.urgency)
                + enc.text(self.specialty, 1, 64, "consult.specialty")
                + enc.text(self.question, 1, 16384, "consult.question")
                + enc.text(self.clinical_summary, 0, 65535, "consult.clinical_summary"))


@dataclass(frozen=True)
class Reply:
    in_reply_to: bytes
    text: str

    @staticmethod
    def read(r: Reader) -> "Reply":
        return Reply(r.fixed(16, "reply.in_reply_to"), r.text(1, 65535, "reply.text"))

    def encode(self) -> bytes:
        return enc.fixed(self.in_reply_to, 16, "reply.in_reply_to") + enc.text(self.text, 1, 65535, "reply.text")


@dataclass(frozen=True)
class Receipt:
    kind: int
    message_id: bytes
    reason: Optional[int] = None
    detail: Optional[str] = None

    @staticmethod
    def read(r: Reader) -> "Receipt":
        kind = r.enum((DELIVERED, READ, FAILED), "receipt.kind")
        message_id = r.fixed(16, "receipt.message_id")
        if kind == FAILED:
            reason = r.enum(tuple(FAILURE_REASONS.values()), "receipt.reason")
            detail = r.text(0, 1024, "receipt.detail")
            return Receipt(kind, message_id, reason, detail)
        return Receipt(kind, message_id)

    def encode(self) -> bytes:
        if self.kind not in (DELIVERED, READ, FAILED):
            fail("unknown_enum", "receipt.kind")
        out = enc.u8(self.kind) + enc.fixed(self.message_id, 16, "receipt.message_id")
        if self.kind == FAILED:
            if self.reason not in FAILURE_REASONS.values():
                fail("unknown_enum", "receipt.reason")
            out += enc.u8(self.reason) + enc.text(self.detail or "", 0, 1024, "receipt.detail")
        elif self.reason is not None or self.detail is not None:
            fail("invalid_value", "receipt: failure fields on a delivered or read receipt")
        return out


@dataclass(frozen=True)
class AttachmentDescriptor:
    size: int
    sha256: bytes
    media_type: str
    file_name: str
    age_identity: bytes

    @staticmethod
    def read(r: Reader) -> "AttachmentDescriptor":
        where = r.where("attachment.size")
        size = r.u64("attachment.size")
        if not 1 <= size <= MAX_ATTACHMENT_SIZE:
            fail("invalid_value", where)
        sha = r.fixed(32, "attachment.sha256")
        media_type = r.text(1, 127, "attachment.media_type")
        file_name = r.text(0, 255, "attachment.file_name")
        identity = r.fixed(32, "attachment.age_identity")
        return AttachmentDescriptor(size, sha, media_type, file_name, identity)

    def encode(self) -> bytes:
        if not 1 <= self.size <= MAX_ATTACHMENT_SIZE:
            fail("invalid_value", "attachment.size")
        return (enc.u64(self.size) + enc.fixed(self.sha256, 32, "attachment.sha256")
                + enc.text(self.media_type, 1, 127, "attachment.media_type")
                + enc.text(self.file_name, 0, 255, "attachment.file_name")
                + _key32(self.age_identity, "attachment.age_identity"))


_BODY_TYPES = {CONSULT: Consult, REPLY: Reply, RECEIPT: Receipt}
MAX_BODY = 1048576


@dataclass(frozen=True)
class Message:
    sender: Party
    recipient: Party
    message_id: bytes
    thread_id: bytes
    created_at: int
    content_type: int
    body: object  # Consult, Reply or Receipt
    attachments: List[AttachmentDescriptor] = field(default_factory=list)

    @staticmethod
    def read(r: Reader) -> "Message":
        sender = Party.read(r)
        recipient = Party.read(r)
        message_id = r.fixed(16, "message.message_id")
        thread_id = r.fixed(16, "message.thread_id")
        created_at = r.time("message.created_at")
        content_type = r.enum((CONSULT, REPLY, RECEIPT), "message.content_type")
        body = r.nested(_BODY_TYPES[content_type].read, 1, MAX_BODY, "message.body")
        where = r.where("message.attachments")
        attachments = r.list(AttachmentDescriptor.read, 0, 16, "message.attachments")
        if content_type == RECEIPT and attachments:
            fail("invalid_value", where)
        return Message(sender, recipient, message_id, thread_id, created_at, content_type, body, attachments)

    def encode(self) -> bytes:
        expected = _BODY_TYPES.get(self.content_type)
        if expected is None:
            fail("unknown_enum", "message.content_type")
        if not isinstance(self.body, expected):
            fail("invalid_value", "message.body does not match content_type")
        if self.content_type == RECEIPT and self.attachments:
            fail("invalid_value", "message.attachments on a receipt")
        return (self.sender.encode() + self.recipient.encode()
                + enc.fixed(self.message_id, 16, "message.message_id")
                + enc.fixed(self.thread_id, 16, "message.thread_id")
                + enc.u64(self.created_at) + enc.u8(self.content_type)
                + enc.nested(self.body.encode(), 1, MAX_BODY, "message.body")
                + enc.list_(self.attachments, AttachmentDescriptor.encode, 0, 16, "message.attachments"))

    @staticmethod
    def decode(data: bytes) -> "Message":
        return decode_top(data, Message.read)


@dataclass(frozen=True)
class SignedMessage:
    message: Message
    signature: bytes
    message_bytes: bytes  # exactly the bytes of the message field as received

    @staticmethod
    def read(r: Reader) -> "SignedMessage":
        start = r.pos
        message = Message.read(r)
        raw = r.data[start:r.pos]
        signature = r.fixed(64, "signed_message.signature")
        return SignedMessage(message, signature, raw)

    @staticmethod
    def decode(data: bytes) -> "SignedMessage":
        return decode_top(data, SignedMessage.read)

    def encode(self) -> bytes:
        return self.message_bytes + self.signature


# --- Prekeys and bundles (keys.md) -----------------------------------------------------------------------------

@dataclass(frozen=True)
class SignedPrekey:
    id: int
    public_key: bytes
    expires_at: int
    signature: bytes

    @staticmethod
    def read(r: Reader) -> "SignedPrekey":
        return SignedPrekey(r.u32("signed_prekey.id"), r.fixed(32, "signed_prekey.public_key"),
                            r.time("signed_prekey.expires_at"), r.fixed(64, "signed_prekey.signature"))

    def encode(self) -> bytes:
        return (enc.u32(self.id) + _key32(self.public_key, "signed_prekey.public_key") + enc.u64(self.expires_at)
                + enc.fixed(self.signature, 64, "signed_prekey.signature"))

    def signed_bytes(self, identity_key: bytes) -> bytes:
        return (SIGNED_PREKEY_LABEL + identity_key + enc.u32(self.id) + self.public_key
                + enc.u64(self.expires_at))

    @staticmethod
    def make(identity_seed: bytes, prekey_id: int, public_key: bytes, expires_at: int) -> "SignedPrekey":
        unsigned = SignedPrekey(prekey_id, public_key, expires_at, bytes(64))
        identity_key = ed25519.public_key_from_seed(identity_seed)
        return SignedPrekey(prekey_id, public_key, expires_at,
                            ed25519.sign(identity_seed, unsigned.signed_bytes(identity_key)))


@dataclass(frozen=True)
class OneTimePrekey:
    id: int
    public_key: bytes
    signature: bytes

    @staticmethod
    def read(r: Reader) -> "OneTimePrekey":
        return OneTimePrekey(r.u32("one_time_prekey.id"), r.fixed(32, "one_time_prekey.public_key"),
                             r.fixed(64, "one_time_prekey.signature"))

    def encode(self) -> bytes:
        return (enc.u32(self.id) + _key32(self.public_key, "one_time_prekey.public_key")
                + enc.fixed(self.signature, 64, "one_time_prekey.signature"))

    def signed_bytes(self, identity_key: bytes) -> bytes:
        return ONE_TIME_PREKEY_LABEL + identity_key + enc.u32(self.id) + self.public_key

    @staticmethod
    def make(identity_seed: bytes, prekey_id: int, public_key: bytes) -> "OneTimePrekey":
        unsigned = OneTimePrekey(prekey_id, public_key, bytes(64))
        identity_key = ed25519.public_key_from_seed(identity_seed)
        return OneTimePrekey(prekey_id, public_key,
                             ed25519.sign(identity_seed, unsigned.signed_bytes(identity_key)))


@dataclass(frozen=True)
class PrekeyBundle:
    owner: Party
    signed_prekey: SignedPrekey
    one_time_prekey: Optional[OneTimePrekey] = None
    version: int = 1

    @staticmethod
    def read(r: Reader) -> "PrekeyBundle":
        version = r.version((1,), "bundle.version")
        owner = Party.read(r)
        signed = SignedPrekey.read(r)
        one_time = r.optional(OneTimePrekey.read, "bundle.one_time_prekey")
        return PrekeyBundle(owner, signed, one_time, version)

    @staticmethod
    def decode(data: bytes) -> "PrekeyBundle":
        return decode_top(data, PrekeyBundle.read)

    def encode(self) -> bytes:
        return (enc.u8(self.version) + self.owner.encode() + self.signed_prekey.encode()
                + enc.optional(self.one_time_prekey, OneTimePrekey.encode))


# --- Envelope (envelope.md) ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Header:
    prekey_kind: int
    prekey_id: int
    enc: bytes
    suite: int = SUITE
    version: int = 1

    @staticmethod
    def read(r: Reader) -> "Header":
        version = r.version((1,), "envelope.header.version")
        suite = r.u16("envelope.header.suite")
        kind = r.enum((PREKEY_SIGNED, PREKEY_ONE_TIME), "envelope.header.prekey_kind")
        prekey_id = r.u32("envelope.header.prekey_id")
        enc_key = r.fixed(32, "envelope.header.enc")
        return Header(kind, prekey_id, enc_key, suite, version)

    def encode(self) -> bytes:
        return (enc.u8(self.version) + enc.u16(self.suite) + enc.u8(self.prekey_kind) + enc.u32(self.prekey_id)
                + _key32(self.enc, "envelope.header.enc"))


MIN_CIPHERTEXT, MAX_CIPHERTEXT = 17, 2097152


@dataclass(frozen=True)
class SealedEnvelope:
    header: Header
    ciphertext: bytes

    @staticmethod
    def read(r: Reader) -> "SealedEnvelope":
        header = Header.read(r)
        ciphertext = r.opaque(MIN_CIPHERTEXT, MAX_CIPHERTEXT, "envelope.ciphertext")
        return SealedEnvelope(header, ciphertext)

    @staticmethod
    def decode(data: bytes) -> "SealedEnvelope":
        return decode_top(data, SealedEnvelope.read)

    def encode(self) -> bytes:
        return self.header.encode() + enc.opaque(self.ciphertext, MIN_CIPHERTEXT, MAX_CIPHERTEXT,
                                                 "envelope.ciphertext")


def read_handle(r: Reader) -> bytes:
    return r.handle("handle")
