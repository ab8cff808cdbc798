"""A relay client: TLS 1.3 with ALPN curbside/1 and a pinned key (spec/transport.md), frames, login and
registration bound to the tls-exporter channel binding, and the relay operations (spec/relay.md).

Python's ssl module cannot export keying material, so TLS is pyOpenSSL's.
"""

import hashlib
import os
import socket
import struct

from OpenSSL import SSL, crypto

from . import encoding as enc
from . import relay
from .errors import CODES, CurbsideError, fail
from .structures import PrekeyBundle

EXPORTER_LABEL = b"EXPORTER-Channel-Binding"


class RelayError(CurbsideError):
    """An error frame from the relay; `identifier` and `code` are the errors.md values it carried."""

    def __init__(self, code: int, detail: str):
        self.relay_code = code
        self.detail = detail
        super().__init__(CODES.get(code, "unexpected_frame"), f"relay answered {code} {CODES.get(code)}: {detail}")
        self.code = code


class PinMismatch(Exception):
    def __init__(self, expected: str, presented: str):
        super().__init__(f"relay key mismatch: expected sha256:{expected}, presented sha256:{presented}")
        self.expected, self.presented = expected, presented


def spki_sha256(cert: crypto.X509) -> str:
    """SHA-256 of the DER SubjectPublicKeyInfo, lowercase hex (transport.md §How a client trusts the relay)."""
    der = crypto.dump_publickey(crypto.FILETYPE_ASN1, cert.get_pubkey())
    return hashlib.sha256(der).hexdigest()


def _normalise_pin(pin: str) -> str:
    pin = pin.strip().lower()
    if pin.startswith("sha256:"):
        pin = pin[len("sha256:"):]
    if len(pin) != 64 or any(c not in "0123456789abcdef" for c in pin):
        raise ValueError("a pin is 64 hex digits")
    return pin


class Connection:
    """One TLS connection to a relay, speaking frames."""

    def __init__(self, host: str, port: int, pin: str, timeout: float = 30.0,
                 maximum_length: int = relay.DEFAULT_MAXIMUM_LENGTH):
        self.pin = _normalise_pin(pin)
        self.presented = None
        self.maximum_length = maximum_length
        self.next_request_id = 1
        self.pushes = []  # frames with request id 0 that arrived while waiting for an answer
        self.challenge = None

        ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
        ctx.set_min_proto_version(SSL.TLS1_3_VERSION)
        ctx.set_max_proto_version(SSL.TLS1_3_VERSION)
        ctx.set_options(SSL.OP_NO_TICKET)
        ctx.set_alpn_protos([relay.ALPN])
        ctx.set_verify(SSL.VERIFY_PEER, self._verify)

        sock = socket.create_connection((host, port), timeout=timeout)
        # pyOpenSSL works on the descriptor: keep it blocking, with kernel timeouts instead of Python's.
        sock.settimeout(None)
        tv = struct.pack("ll", int(timeout), int((timeout % 1) * 1e6))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
        self.tls = SSL.Connection(ctx, sock)
        self.tls.set_connect_state()
        try:
            self.tls.do_handshake()
        except SSL.Error:
            sock.close()
            if self.presented is not None and self.presented != self.pin:
                raise PinMismatch(self.pin, self.presented) from None
            raise
        if self.tls.get_protocol_version_name() != "TLSv1.3":
            self.close()
            raise ConnectionError("the relay did not use TLS 1.3")
        if self.tls.get_alpn_proto_negotiated() != relay.ALPN:
            self.close()
            raise ConnectionError("the relay selected no application protocol")
        # RFC 9266 tls-exporter: label EXPORTER-Channel-Binding, empty context, 32 bytes.
        self.channel_binding = self.tls.export_keying_material(EXPORTER_LABEL, 32, b"")

    def _verify(self, conn, cert, errnum, depth, ok):
        # Pinning: only the leaf's key counts; names, dates and issuers are not consulted.
        if depth != 0:
            return True
        self.presented = spki_sha256(cert)
        return self.presented == self.pin

    # --- frames ------------------------------------------------------------------------------------------------

    def _recv_exact(self, n: int, at_frame_start: bool = False) -> bytes:
        out = b""
        while len(out) < n:
            try:
                chunk = self.tls.recv(n - len(out))
            except SSL.ZeroReturnError:
                chunk = b""
            except SSL.SysCallError:
                chunk = b""
            if not chunk:
                if at_frame_start and not out:
                    raise ConnectionError("the relay closed the connection")
                fail("malformed_frame", "connection ended inside a frame")
            out += chunk
        return out

    def read_frame(self) -> relay.Frame:
        length = int.from_bytes(self._recv_exact(4, at_frame_start=True), "big")
        relay.check_length(length, self.maximum_length)
        rest = self._recv_exact(length)
        return relay.Frame(int.from_bytes(rest[:2], "big"), int.from_bytes(rest[2:6], "big"), rest[6:])

    def write_frame(self, frame_type: int, request_id: int, body: bytes) -> None:
        self.tls.sendall(relay.encode_frame(frame_type, request_id, body))

    def request(self, frame_type: int, body: bytes, expect: int):
        """Send one request and wait for its answer; an error frame raises RelayError."""
        request_id = self.next_request_id
        self.next_request_id += 1
        self.write_frame(frame_type, request_id, body)
        return self.wait_for(request_id, expect)

    def wait_for(self, request_id: int, expect: int):
        while True:
            frame = self.read_frame()
            value = relay.decode_body(frame.type, frame.body)
            if frame.type == relay.ERROR and frame.request_id in (request_id, 0):
                raise RelayError(value.code, value.detail)
            if frame.request_id == request_id and request_id != 0:
                if frame.type != expect:
                    fail("unexpected_frame", f"type 0x{frame.type:04x}")
                return value
            if frame.request_id == 0:
                if frame.type == expect and request_id == 0:
                    return value
                if frame.type == relay.CHALLENGE and self.challenge is None:
                    # Read while waiting for the answer to a bound login, which the relay writes after it.
                    self.challenge = value
                    continue
                self.pushes.append((frame.type, value))
                continue
            fail("unexpected_frame", f"answer to request {frame.request_id}")

    def close(self) -> None:
        try:
            self.tls.shutdown()
        except SSL.Error:
            pass
        try:
            self.tls.sock_shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.tls.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- login and registration ----------------------------------------------------------------------------------

    def read_challenge(self) -> relay.Challenge:
        if self.challenge is None:
            self.challenge = self.wait_for(0, relay.CHALLENGE)
        return self.challenge

    def register(self, identity_seed: bytes, handle: bytes, code: bytes) -> None:
        challenge = self.read_challenge()
        body = relay.make_register(identity_seed, handle, code, challenge.nonce, self.channel_binding)
        self.request(relay.REGISTER, body.encode(), relay.REGISTERED)

    def check_enrollment(self, handle: bytes, code: bytes) -> None:
        """Asks whether `register` would accept `code` for `handle`; changes nothing. An error frame raises."""
        self.read_challenge()
        self.request(relay.CHECK_ENROLLMENT, relay.CheckEnrollment(handle, code).encode(), relay.ENROLLMENT_USABLE)

    def login(self, identity_seed: bytes, handle: bytes) -> None:
        challenge = self.read_challenge()
        body = relay.make_login(identity_seed, handle, challenge.nonce, self.channel_binding)
        self.request(relay.LOGIN, body.encode(), relay.LOGIN_ACCEPTED)

    def bound_login(self, identity_seed: bytes, handle: bytes, channel_binding: bytes = None) -> None:
        """relay.md §Bound login: signs the channel binding, without waiting for the challenge (read on the way).

        `channel_binding` signs another connection's value instead of this one's (a replay, for tests).
        """
        body = relay.make_bound_login(identity_seed, handle, channel_binding or self.channel_binding)
        self.request(relay.BOUND_LOGIN, body.encode(), relay.LOGIN_ACCEPTED)

    # --- key directory -----------------------------------------------------------------------------------------

    def publish_prekeys(self, signed_prekey, one_time_prekeys) -> int:
        body = relay.PublishPrekeys(signed_prekey, list(one_time_prekeys)).encode()
        return self.request(relay.PUBLISH_PREKEYS, body, relay.PREKEYS_PUBLISHED)

    def fetch_bundle(self, handle: bytes) -> PrekeyBundle:
        # The frame body decodes as a PrekeyBundle, a top-level value (decode_body checked every byte).
        return self.request(relay.FETCH_BUNDLE, enc.handle(handle), relay.BUNDLE)

    # --- store and forward -------------------------------------------------------------------------------------

    def send(self, recipient: bytes, envelope: bytes, attachments=()) -> relay.Stored:
        body = relay.Send(recipient, envelope, list(attachments)).encode()
        return self.request(relay.SEND, body, relay.STORED)

    def fetch(self, after: int = 0, limit: int = 100):
        return self.request(relay.FETCH, relay.Fetch(after, limit).encode(), relay.ENVELOPES)

    def acknowledge(self, envelope_ids) -> int:
        body = enc.list_(list(envelope_ids), lambda i: enc.fixed(i, 32), 1, 1000)
        return self.request(relay.ACKNOWLEDGE, body, relay.ACKNOWLEDGED)

    def reject(self, rejections) -> int:
        """Envelopes this device received and cannot open: (envelope id, FailureReason value) pairs."""
        body = enc.list_([relay.Rejection(i, reason) for i, reason in rejections], lambda r: r.encode(), 1, 1000)
        return self.request(relay.REJECT, body, relay.ACKNOWLEDGED)

    def fetch_notices(self, after: int = 0):
        return self.request(relay.FETCH_NOTICES, enc.u64(after), relay.NOTICES)

    def acknowledge_notices(self, through: int) -> None:
        self.request(relay.ACKNOWLEDGE_NOTICES, enc.u64(through), relay.NOTICES_ACKNOWLEDGED)

    # --- attachments -------------------------------------------------------------------------------------------

    def open_upload(self, attachment_id: bytes, size: int) -> relay.UploadStatus:
        return self.request(relay.OPEN_UPLOAD, relay.OpenUpload(attachment_id, size).encode(), relay.UPLOAD_STATUS)

    def upload_chunk(self, attachment_id: bytes, offset: int, data: bytes) -> relay.UploadStatus:
        body = relay.UploadChunk(attachment_id, offset, data).encode()
        return self.request(relay.UPLOAD_CHUNK, body, relay.UPLOAD_STATUS)

    def commit_upload(self, attachment_id: bytes) -> relay.UploadStatus:
        return self.request(relay.COMMIT_UPLOAD, enc.fixed(attachment_id, 32), relay.UPLOAD_STATUS)

    def commit_upload_as(self, upload_id: bytes, attachment_id: bytes, size: int) -> relay.UploadStatus:
        body = relay.CommitUploadAs(upload_id, attachment_id, size).encode()
        return self.request(relay.COMMIT_UPLOAD_AS, body, relay.UPLOAD_STATUS)

    def upload_as_encrypted(self, pieces, bound: int, chunk_size: int = 256 * 1024) -> bytes:
        """relay.md §Attachments, commit_upload_as: upload a file while it is produced (`pieces` yields its bytes),
        under a random provisional id opened with at most `bound` bytes; returns its id (SHA-256)."""
        upload_id = os.urandom(32)
        self.open_upload(upload_id, bound)
        digest, held, pending = hashlib.sha256(), 0, b""
        for piece in pieces:
            digest.update(piece)
            pending += piece
            while len(pending) >= chunk_size:
                held = self.upload_chunk(upload_id, held, pending[:chunk_size]).held
                pending = pending[chunk_size:]
        if pending:
            held = self.upload_chunk(upload_id, held, pending).held
        attachment_id = digest.digest()
        status = self.commit_upload_as(upload_id, attachment_id, held)
        if status.state != relay.COMPLETE or status.held != held:
            raise ConnectionError("upload not complete")
        return attachment_id

    def abandon_upload(self, attachment_id: bytes) -> None:
        """relay.md §Attachments: the account no longer needs this upload; answered whatever the relay held."""
        self.request(relay.ABANDON_UPLOAD, enc.fixed(attachment_id, 32), relay.UPLOAD_ABANDONED)

    def download(self, attachment_id: bytes, offset: int, length: int) -> relay.AttachmentData:
        body = relay.Download(attachment_id, offset, length).encode()
        return self.request(relay.DOWNLOAD, body, relay.ATTACHMENT_DATA)

    def upload(self, data: bytes, chunk_size: int = 256 * 1024) -> bytes:
        """Upload an encrypted attachment, resuming from what the relay holds; returns its id (SHA-256)."""
        attachment_id = hashlib.sha256(data).digest()
        status = self.open_upload(attachment_id, len(data))
        if status.state != relay.COMPLETE:
            offset = status.held
            while offset < len(data):
                status = self.upload_chunk(attachment_id, offset, data[offset:offset + chunk_size])
                offset = status.held
            status = self.commit_upload(attachment_id)
        if status.state != relay.COMPLETE or status.held != len(data):
            raise ConnectionError("upload not complete")
        return attachment_id

    def download_all(self, attachment_id: bytes, size: int, chunk_size: int = 256 * 1024) -> bytes:
        out = b""
        while len(out) < size:
            data = self.download(attachment_id, len(out), min(chunk_size, size - len(out)))
            if data.size != size:
                fail("invalid_value", "attachment size differs from the descriptor")
            if data.offset != len(out) or not data.data:
                fail("invalid_value", "download made no progress")
            out += data.data
        return out


def connect(address: str, pin: str, **kw) -> Connection:
    host, _, port = address.rpartition(":")
    return Connection(host, int(port), pin, **kw)
