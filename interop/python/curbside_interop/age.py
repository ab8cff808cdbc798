"""age v1 files with one X25519 recipient (spec/attachments.md), and Bech32 keys (BIP 173)."""

import base64
import binascii
import os
import re

from . import hpke
from .errors import CurbsideError, fail

VERSION_LINE = b"age-encryption.org/v1"
MAX_HEADER = 16 * 1024
CHUNK = 65536
TAG = 16
SEALED_CHUNK = CHUNK + TAG
STANZA_INFO = b"age-encryption.org/v1/X25519"

IDENTITY_HRP = "age-secret-key-"
RECIPIENT_HRP = "age"

# --- Bech32 (BIP 173, checksum constant 1, no length limit) -----------------------------------------------------

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values):
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= _GEN[i] if ((top >> i) & 1) else 0
    return chk


def _hrp_expand(hrp):
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convert_bits(data, frm, to, pad):
    acc, bits, out = 0, 0, []
    maxv = (1 << to) - 1
    for value in data:
        acc = (acc << frm) | value
        bits += frm
        while bits >= to:
            bits -= to
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (to - bits)) & maxv)
    elif bits >= frm or ((acc << (to - bits)) & maxv):
        return None
    return out


def bech32_encode(hrp: str, data: bytes) -> str:
    values = _convert_bits(data, 8, 5, True)
    checksum_input = _hrp_expand(hrp) + values + [0] * 6
    pm = _polymod(checksum_input) ^ 1
    checksum = [(pm >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[v] for v in values + checksum)


def bech32_decode(text: str):
    """(hrp in lower case, data bytes), or raise age_malformed_key."""
    if not text or any(ord(c) < 33 or ord(c) > 126 for c in text):
        fail("age_malformed_key")
    if text.lower() != text and text.upper() != text:
        fail("age_malformed_key", "mixed case")
    text = text.lower()
    pos = text.rfind("1")
    if pos < 1 or pos + 7 > len(text):
        fail("age_malformed_key")
    hrp, rest = text[:pos], text[pos + 1:]
    try:
        values = [_CHARSET.index(c) for c in rest]
    except ValueError:
        fail("age_malformed_key")
    if _polymod(_hrp_expand(hrp) + values) != 1:
        fail("age_malformed_key", "checksum")
    data = _convert_bits(values[:-6], 5, 8, False)
    if data is None:
        fail("age_malformed_key", "padding")
    return hrp, bytes(data)


def encode_identity(private_key: bytes) -> str:
    return bech32_encode(IDENTITY_HRP, private_key).upper()


def encode_recipient(public_key: bytes) -> str:
    return bech32_encode(RECIPIENT_HRP, public_key)


def parse_identity(text: str) -> bytes:
    hrp, data = bech32_decode(text.strip())
    if hrp != IDENTITY_HRP or len(data) != 32:
        fail("age_malformed_key", "not an X25519 identity")
    return data


def parse_recipient(text: str) -> bytes:
    hrp, data = bech32_decode(text.strip())
    if hrp != RECIPIENT_HRP or len(data) != 32:
        fail("age_malformed_key", "not an X25519 recipient")
    return data


# --- base64 without padding, canonical ---------------------------------------------------------------------------

_B64 = re.compile(rb"[A-Za-z0-9+/]*")


def b64encode(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=")


def b64decode_canonical(text: bytes):
    """Decode RFC 4648 base64 with no padding; None unless canonical (no '=', zero unused bits)."""
    if _B64.fullmatch(text) is None or len(text) % 4 == 1:
        return None
    try:
        data = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        return None
    if b64encode(data) != text:
        return None
    return data


# --- encryption ------------------------------------------------------------------------------------------------

def _wrap_key(shared: bytes, share: bytes, recipient: bytes) -> bytes:
    return hpke.hkdf(shared, share + recipient, STANZA_INFO, 32)


def _mac_key(file_key: bytes) -> bytes:
    return hpke.hkdf(file_key, b"", b"header", 32)


def _payload_key(file_key: bytes, nonce: bytes) -> bytes:
    return hpke.hkdf(file_key, nonce, b"payload", 32)


def _chunk_nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def encrypt(plaintext: bytes, recipient: bytes, file_key: bytes = None, ephemeral_secret: bytes = None,
            payload_nonce: bytes = None) -> bytes:
    """Encrypt to one X25519 recipient (32-byte public key). The optional inputs reproduce vectors."""
    file_key = os.urandom(16) if file_key is None else file_key
    ephemeral_secret = os.urandom(32) if ephemeral_secret is None else ephemeral_secret
    payload_nonce = os.urandom(16) if payload_nonce is None else payload_nonce
    share = hpke.x25519_public(ephemeral_secret)
    shared = hpke.x25519(ephemeral_secret, recipient)
    body = hpke.aead_seal(_wrap_key(shared, share, recipient), bytes(12), b"", file_key)
    header = VERSION_LINE + b"\n-> X25519 " + b64encode(share) + b"\n" + _body_lines(body) + b"---"
    mac = hpke.hmac_sha256(_mac_key(file_key), header)
    out = [header + b" " + b64encode(mac) + b"\n", payload_nonce]
    key = _payload_key(file_key, payload_nonce)
    chunks = [plaintext[i:i + CHUNK] for i in range(0, len(plaintext), CHUNK)] or [b""]
    for i, chunk in enumerate(chunks):
        out.append(hpke.aead_seal(key, _chunk_nonce(i, i == len(chunks) - 1), b"", chunk))
    return b"".join(out)


def _body_lines(body: bytes) -> bytes:
    text = b64encode(body)
    lines = [text[i:i + 64] for i in range(0, len(text), 64)]
    if not lines or len(lines[-1]) == 64:
        lines.append(b"")
    return b"".join(line + b"\n" for line in lines)


# --- decryption ------------------------------------------------------------------------------------------------

class _Lines:
    """Reads header lines; the end of input inside the header is age_truncated, and no header end within
    16 KiB is age_malformed_header."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def line(self) -> bytes:
        end = self.data.find(b"\n", self.pos, MAX_HEADER)
        if end < 0:
            if len(self.data) < MAX_HEADER:
                fail("age_truncated", "header")
            fail("age_malformed_header", "no header end within 16 KiB")
        out = self.data[self.pos:end]
        self.pos = end + 1
        return out


def _is_arg(arg: bytes) -> bool:
    return len(arg) > 0 and all(33 <= c <= 126 for c in arg)


def parse_header(data: bytes):
    """Returns (stanzas as [(args, body)], header bytes covered by the MAC, mac, payload offset)."""
    lines = _Lines(data)
    if lines.line() != VERSION_LINE:
        fail("age_unsupported_version")
    stanzas = []
    while True:
        start = lines.pos
        line = lines.line()
        if line.startswith(b"-> "):
            args = line[3:].split(b" ")
            if not all(_is_arg(a) for a in args):
                fail("age_malformed_header", "stanza arguments")
            body_text = b""
            while True:
                body_line = lines.line()
                if len(body_line) > 64 or b64decode_canonical(body_line) is None:
                    fail("age_malformed_header", "stanza body")
                body_text += body_line
                if len(body_line) < 64:
                    break
            body = b64decode_canonical(body_text)
            if body is None:
                fail("age_malformed_header", "stanza body")
            stanzas.append((args, body))
        elif line.startswith(b"---"):
            if not stanzas:
                fail("age_malformed_header", "no stanza")
            if len(line) != 47 or line[3:4] != b" ":
                fail("age_malformed_header", "MAC line")
            mac = b64decode_canonical(line[4:])
            if mac is None or len(mac) != 32:
                fail("age_malformed_header", "MAC line")
            return stanzas, data[:start + 3], mac, lines.pos
        else:
            fail("age_malformed_header", "line")


def decrypt(data: bytes, identity: bytes) -> bytes:
    """Decrypt an age file with a raw 32-byte X25519 identity; errors are the age_* codes of errors.md."""
    data = bytes(data)
    stanzas, mac_input, mac, offset = parse_header(data)
    recipient = hpke.x25519_public(identity)
    x25519_stanzas = []
    for args, body in stanzas:
        if args[0] != b"X25519":
            continue
        if len(args) != 2:
            fail("age_malformed_header", "X25519 stanza arguments")
        share = b64decode_canonical(args[1])
        if share is None or len(share) != 32 or len(body) != 32:
            fail("age_malformed_header", "X25519 stanza")
        x25519_stanzas.append((share, body))
    # Every X25519 stanza is computed, even after one has opened: an all-zero shared secret (a low-order share)
    # anywhere in the header fails the whole file (attachments.md §Header; c2sp.org/age "MUST abort").
    file_key = None
    for share, body in x25519_stanzas:
        try:
            shared = hpke.x25519(identity, share)
        except CurbsideError:
            fail("age_malformed_header", "X25519 share with an all-zero shared secret")
        if file_key is not None:
            continue
        try:
            file_key = hpke.aead_open(_wrap_key(shared, share, recipient), bytes(12), b"", body)
        except CurbsideError:
            continue
    if file_key is None:
        fail("age_no_matching_identity")
    if not _ct_equal(hpke.hmac_sha256(_mac_key(file_key), mac_input), mac):
        fail("age_bad_header_mac")
    if len(data) - offset < 16:
        fail("age_truncated", "nonce")
    nonce = data[offset:offset + 16]
    key = _payload_key(file_key, nonce)
    return b"".join(_payload(data, offset + 16, key))


def _ct_equal(a: bytes, b: bytes) -> bool:
    import hmac
    return hmac.compare_digest(a, b)


def _try_open(key, counter, last, chunk):
    try:
        return hpke.aead_open(key, _chunk_nonce(counter, last), b"", chunk)
    except CurbsideError:
        return None


def _payload(data: bytes, pos: int, key: bytes):
    """Yields verified plaintext chunks (attachments.md §Payload)."""
    counter = 0
    while True:
        remaining = len(data) - pos
        if remaining == 0:
            fail("age_truncated", "no final chunk")
        chunk = data[pos:pos + SEALED_CHUNK]
        pos += len(chunk)
        if remaining > SEALED_CHUNK:
            # A full-size chunk with more bytes behind it: must be a non-final chunk.
            plain = _try_open(key, counter, False, chunk)
            if plain is None:
                if _try_open(key, counter, True, chunk) is not None:
                    fail("age_chunk_after_last")
                fail("age_chunk_decryption_failed", f"chunk {counter}")
            yield plain
            counter += 1
            continue
        plain = _try_open(key, counter, True, chunk)
        if plain is None:
            if len(chunk) == SEALED_CHUNK and _try_open(key, counter, False, chunk) is not None:
                fail("age_truncated", "no final chunk")
            fail("age_chunk_decryption_failed", f"chunk {counter}")
        if not plain and counter > 0:
            fail("age_empty_final_chunk")
        yield plain
        return
