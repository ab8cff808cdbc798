"""A minimal provider client in memory: identity, prekeys, pins, sending consults with attachments, and
receiving, checking and acknowledging envelopes (spec/envelope.md §After opening, spec/attachments.md)."""

import hashlib
import os
import time
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

from . import age, ed25519, hpke
from .client import Connection, RelayError
from .envelope import Opened, open_envelope, seal
from .errors import CurbsideError, fail
from .keys import new_one_time_prekey, new_signed_prekey, verify_bundle
from .structures import (CONSULT, DELIVERED, FAILED, FAILURE_REASONS, PREKEY_ONE_TIME, PREKEY_SIGNED, RECEIPT,
                         ROUTINE, AttachmentDescriptor, Consult, Message, Party, Receipt)

DAY_MS = 24 * 3600 * 1000


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Attachment:
    """A file to send: plaintext bytes with a media type and a display name."""
    data: bytes
    media_type: str
    file_name: str


@dataclass
class Received:
    envelope_id: bytes
    sender_handle: bytes
    opened: Opened
    files: List[Tuple[AttachmentDescriptor, bytes]] = field(default_factory=list)
    problem: "AttachmentProblem" = None  # set when an attachment was unavailable or corrupt


class Provider:
    def __init__(self, handle: str, identity_seed: bytes = None):
        self.identity_seed = identity_seed or os.urandom(32)
        self.party = Party(ed25519.public_key_from_seed(self.identity_seed), handle.encode("ascii"))
        self.prekeys: Dict[Tuple[int, int], bytes] = {}
        self.pins: Dict[bytes, bytes] = {}  # handle -> identity key (keys.md §Pinning)
        self.seen = set()  # (sender identity key, message id) accepted (envelope.md §Duplicates)
        self.next_one_time_id = 100
        self.fetch_cursor = 0

    # --- registration and prekeys ------------------------------------------------------------------------------

    def register(self, conn: Connection, enrollment_code: bytes) -> None:
        conn.register(self.identity_seed, self.party.handle, enrollment_code)

    def login(self, conn: Connection) -> None:
        conn.login(self.identity_seed, self.party.handle)

    def publish_prekeys(self, conn: Connection, one_time: int = 10, signed_id: int = 1,
                        lifetime_ms: int = 30 * DAY_MS) -> int:
        private, signed = new_signed_prekey(self.identity_seed, signed_id, now_ms() + lifetime_ms)
        self.prekeys[(PREKEY_SIGNED, signed_id)] = private
        one_times = []
        for _ in range(one_time):
            private, otk = new_one_time_prekey(self.identity_seed, self.next_one_time_id)
            self.prekeys[(PREKEY_ONE_TIME, self.next_one_time_id)] = private
            self.next_one_time_id += 1
            one_times.append(otk)
        return conn.publish_prekeys(signed, one_times)

    # --- pinning -----------------------------------------------------------------------------------------------

    def pinned(self, handle: bytes):
        key = self.pins.get(handle)
        return None if key is None else Party(key, handle)

    def pin(self, party: Party) -> None:
        known = self.pins.get(party.handle)
        if known is not None and known != party.identity_key:
            fail("identity_mismatch", f"{party.handle_text}: the pinned key changed")
        self.pins[party.handle] = party.identity_key

    def fetch_verified_bundle(self, conn: Connection, handle: bytes):
        bundle = conn.fetch_bundle(handle)
        if bundle.owner.handle != handle:
            fail("identity_mismatch", "bundle for another handle")
        verify_bundle(bundle, now_ms(), self.pinned(handle))
        self.pin(bundle.owner)
        return bundle

    # --- sending -----------------------------------------------------------------------------------------------

    def _seal_and_send(self, conn: Connection, message: Message, bundle, attachment_ids=()):
        envelope = seal(message, self.identity_seed, bundle, now_ms(), expected=self.pinned(bundle.owner.handle))
        return conn.send(bundle.owner.handle, envelope, attachment_ids)

    @staticmethod
    def encrypt_attachment(a: Attachment):
        """(descriptor, encrypted file): age-encrypted to a fresh single-use identity."""
        identity = os.urandom(32)
        encrypted = age.encrypt(a.data, hpke.x25519_public(identity))
        return (AttachmentDescriptor(len(encrypted), hashlib.sha256(encrypted).digest(), a.media_type,
                                     a.file_name, identity), encrypted)

    def send_consult(self, conn: Connection, to: str, subject: str, question: str,
                     attachments: List[Attachment] = (), specialty: str = "general", urgency: int = ROUTINE,
                     summary: str = "", prepared=()):
        """Returns (message, stored). Each attachment is age-encrypted to a fresh identity and uploaded first;
        `prepared` adds (descriptor, encrypted file) pairs as they are (tests use it to send damaged files)."""
        handle = to.encode("ascii")
        descriptors, ids = [], []
        for descriptor, encrypted in [self.encrypt_attachment(a) for a in attachments] + list(prepared):
            attachment_id = conn.upload(encrypted)
            descriptors.append(descriptor)
            ids.append(attachment_id)
        # attachments.md: ask open_upload again before the send that names them
        for d in descriptors:
            status = conn.open_upload(d.sha256, d.size)
            if status.held != d.size or status.state != 2:
                fail("unknown_attachment", "upload no longer complete")
        bundle = self.fetch_verified_bundle(conn, handle)
        message_id = os.urandom(16)
        message = Message(self.party, bundle.owner, message_id, message_id, now_ms(), CONSULT,
                          Consult(subject, urgency, specialty, question, summary), descriptors)
        stored = self._seal_and_send(conn, message, bundle, ids)
        return message, stored

    def send_receipt(self, conn: Connection, about: Message, kind: int = DELIVERED, reason: str = None,
                     detail: str = None):
        """An end-to-end receipt to the sender of `about`, in its thread."""
        if about.content_type == RECEIPT:
            raise ValueError("no receipt about a receipt")
        bundle = self.fetch_verified_bundle(conn, about.sender.handle)
        if bundle.owner != about.sender:
            fail("identity_mismatch", "the sender's bundle names another key")
        receipt = (Receipt(kind, about.message_id, FAILURE_REASONS[reason], detail or "") if kind == FAILED
                   else Receipt(kind, about.message_id))
        message = Message(self.party, bundle.owner, os.urandom(16), about.thread_id, now_ms(), RECEIPT, receipt)
        return message, self._seal_and_send(conn, message, bundle)

    # --- receiving ---------------------------------------------------------------------------------------------

    def open(self, data: bytes) -> Opened:
        opened = open_envelope(data, self.party, self.prekeys)
        if opened.prekey_kind == PREKEY_ONE_TIME:
            del self.prekeys[(PREKEY_ONE_TIME, opened.prekey_id)]
        self.pin(opened.message.sender)
        return opened

    def fetch_attachment(self, conn: Connection, d: AttachmentDescriptor) -> bytes:
        """Download, check size then SHA-256 against the descriptor, then decrypt (attachments.md §What the
        recipient checks). Any mismatch or age error is attachment_corrupt to the sender."""
        encrypted = conn.download_all(d.sha256, d.size)
        if len(encrypted) != d.size:
            raise AttachmentProblem("attachment_corrupt", "size differs from the descriptor")
        if hashlib.sha256(encrypted).digest() != d.sha256:
            raise AttachmentProblem("attachment_corrupt", "SHA-256 differs from the descriptor")
        try:
            return age.decrypt(encrypted, d.age_identity)
        except CurbsideError as e:
            raise AttachmentProblem("attachment_corrupt", e.identifier) from e

    def receive(self, conn: Connection, limit: int = 100, acknowledge: bool = True,
                send_failed_receipts: bool = True):
        """Fetch waiting envelopes, open and check each, fetch its attachments, acknowledge. Returns the
        accepted messages (duplicates dropped)."""
        out, ack = [], []
        for delivered in conn.fetch(self.fetch_cursor, limit):
            self.fetch_cursor = max(self.fetch_cursor, delivered.sequence)
            opened = self.open(delivered.envelope)
            key = (opened.message.sender.identity_key, opened.message.message_id)
            if key in self.seen:
                ack.append(delivered.envelope_id)
                continue
            received = Received(delivered.envelope_id, delivered.sender, opened)
            try:
                received.files = [(d, self.fetch_attachment(conn, d)) for d in opened.message.attachments]
            except AttachmentProblem as problem:
                received.problem = problem
            except RelayError as e:
                if e.identifier != "unknown_attachment":
                    raise
                received.problem = AttachmentProblem("attachment_unavailable", e.identifier)
            if received.problem is not None and send_failed_receipts:
                # envelope.md §Receipts: the sender is known, so it learns why (no patient data in detail)
                self.send_receipt(conn, opened.message, FAILED, received.problem.reason, received.problem.reason)
            self.seen.add(key)
            out.append(received)
            ack.append(delivered.envelope_id)
        if acknowledge and ack:
            conn.acknowledge(ack)
        return out


class AttachmentProblem(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail
