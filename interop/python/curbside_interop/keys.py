"""Prekey bundle verification and prekey generation (spec/keys.md)."""

import os

from . import ed25519, hpke
from .errors import fail
from .structures import OneTimePrekey, Party, PrekeyBundle, SignedPrekey


def verify_bundle(bundle: PrekeyBundle, now: int, expected: Party = None) -> None:
    """keys.md §Verifying a bundle; the first failing check decides the error."""
    if expected is not None and (bundle.owner.identity_key != expected.identity_key
                                 or bundle.owner.handle != expected.handle):
        fail("identity_mismatch", "bundle.owner")
    key = bundle.owner.identity_key
    spk = bundle.signed_prekey
    if not ed25519.verify(key, spk.signed_bytes(key), spk.signature):
        fail("bad_prekey_signature", "bundle.signed_prekey")
    if not now < spk.expires_at:
        fail("prekey_expired", "bundle.signed_prekey.expires_at")
    otk = bundle.one_time_prekey
    if otk is not None and not ed25519.verify(key, otk.signed_bytes(key), otk.signature):
        fail("bad_prekey_signature", "bundle.one_time_prekey")


def new_x25519_private_key() -> bytes:
    return os.urandom(32)


def new_signed_prekey(identity_seed: bytes, prekey_id: int, expires_at: int):
    """(private key, SignedPrekey)."""
    private = new_x25519_private_key()
    return private, SignedPrekey.make(identity_seed, prekey_id, hpke.x25519_public(private), expires_at)


def new_one_time_prekey(identity_seed: bytes, prekey_id: int):
    private = new_x25519_private_key()
    return private, OneTimePrekey.make(identity_seed, prekey_id, hpke.x25519_public(private))
