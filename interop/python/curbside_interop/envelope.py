"""Sealing and opening envelopes (spec/envelope.md §Sealing, §Opening)."""

from dataclasses import dataclass

from . import ed25519, hpke
from .errors import CurbsideError, fail
from .keys import verify_bundle
from .structures import (MESSAGE_LABEL, PREKEY_ONE_TIME, PREKEY_SIGNED, SUITE, Header, Message, Party,
                         PrekeyBundle, SealedEnvelope, SignedMessage)

INFO = b"curbside/v1/envelope"


def sign_message(identity_seed: bytes, message_bytes: bytes) -> bytes:
    return ed25519.sign(identity_seed, MESSAGE_LABEL + message_bytes)


def seal(message: Message, identity_seed: bytes, bundle: PrekeyBundle, now: int, ephemeral_ikm: bytes = None,
         expected: Party = None) -> bytes:
    """Seal `message` to `bundle`; returns the encoded SealedEnvelope. `ephemeral_ikm` reproduces vectors."""
    # 1. recipient is the bundle's owner
    if message.recipient != bundle.owner:
        fail("recipient_mismatch", "message.recipient")
    # 2. the bundle verifies (against the pinned party, when there is one)
    verify_bundle(bundle, now, expected)
    # 3. the signing key is the named sender's
    if ed25519.public_key_from_seed(identity_seed) != message.sender.identity_key:
        fail("sender_key_mismatch", "message.sender.identity_key")
    # 4. sign
    message_bytes = message.encode()
    plaintext = message_bytes + sign_message(identity_seed, message_bytes)
    # 5. choose the prekey
    if bundle.one_time_prekey is not None:
        kind, prekey_id, pk = PREKEY_ONE_TIME, bundle.one_time_prekey.id, bundle.one_time_prekey.public_key
    else:
        kind, prekey_id, pk = PREKEY_SIGNED, bundle.signed_prekey.id, bundle.signed_prekey.public_key
    # 6. Encap
    if ephemeral_ikm is None:
        import os
        ephemeral_ikm = os.urandom(32)
    sk_e, _ = hpke.derive_key_pair(ephemeral_ikm)
    try:
        shared_secret, enc = hpke.encap(pk, sk_e)
    except CurbsideError as e:
        if e.identifier == "weak_public_key":
            fail("invalid_prekey", "prekey")
        raise
    # 7-9. header, key schedule, seal with the header as aad
    header = Header(kind, prekey_id, enc).encode()
    key, base_nonce, _ = hpke.key_schedule_base(shared_secret, INFO)
    ciphertext = hpke.aead_seal(key, base_nonce, header, plaintext)
    return SealedEnvelope(Header(kind, prekey_id, enc), ciphertext).encode()


@dataclass(frozen=True)
class Opened:
    message: Message
    signature: bytes
    message_bytes: bytes
    prekey_kind: int
    prekey_id: int


def open_envelope(data: bytes, recipient: Party, prekeys) -> Opened:
    """Open an envelope as `recipient`. `prekeys` maps (kind, id) to the X25519 private key held.

    Deletes nothing: the caller deletes a one-time prekey after a successful open (envelope.md §After opening).
    """
    # 1. decode (decoding errors are reported as they are)
    envelope = SealedEnvelope.decode(data)
    header = envelope.header
    # 2. suite
    if header.suite != SUITE:
        fail("unsupported_suite", "envelope.header.suite")
    # 3. prekey
    sk = prekeys.get((header.prekey_kind, header.prekey_id))
    if sk is None:
        fail("unknown_prekey", "envelope.header.prekey_id")
    # 4. decrypt, with the header bytes as received as aad
    aad = bytes(data[:40])
    try:
        plaintext = hpke.open_base(header.enc, sk, INFO, aad, envelope.ciphertext)
    except CurbsideError:
        fail("decryption_failed")
    # 5. decode the plaintext
    try:
        signed = SignedMessage.decode(plaintext)
    except CurbsideError:
        fail("malformed_content")
    message = signed.message
    # 6. signature
    if not ed25519.verify(message.sender.identity_key, MESSAGE_LABEL + signed.message_bytes, signed.signature):
        fail("bad_signature")
    # 7. recipient
    if message.recipient != recipient:
        fail("wrong_recipient")
    return Opened(message, signed.signature, signed.message_bytes, header.prekey_kind, header.prekey_id)
