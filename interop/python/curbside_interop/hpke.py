"""RFC 9180 HPKE, base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305 (spec/hpke.md).

Written from the primitives: X25519 and ChaCha20-Poly1305 from libsodium (PyNaCl), HMAC-SHA256 from the standard
library. Failures of the primitives raise the 4xx errors of errors.md; envelope.py maps them to envelope errors.
"""

import hashlib
import hmac

import nacl.bindings as sodium
import nacl.exceptions

from .errors import fail

KEM_ID, KDF_ID, AEAD_ID = 0x0020, 0x0001, 0x0003
KEM_SUITE_ID = b"KEM" + KEM_ID.to_bytes(2, "big")
HPKE_SUITE_ID = b"HPKE" + KEM_ID.to_bytes(2, "big") + KDF_ID.to_bytes(2, "big") + AEAD_ID.to_bytes(2, "big")
MODE_BASE = 0x00
N_SECRET, N_ENC, N_PK, N_SK, N_H, N_K, N_N, N_T = 32, 32, 32, 32, 32, 32, 12, 16


# --- primitives ------------------------------------------------------------------------------------------------

def x25519(private_key: bytes, public_key: bytes) -> bytes:
    """RFC 7748 X25519; an all-zero result (small-order peer key) is `weak_public_key`."""
    if len(private_key) != 32 or len(public_key) != 32:
        fail("invalid_key_length", "x25519")
    try:
        out = sodium.crypto_scalarmult(bytes(private_key), bytes(public_key))
    except (nacl.exceptions.CryptoError, RuntimeError):
        fail("weak_public_key", "x25519")
    if out == bytes(32):
        fail("weak_public_key", "x25519")
    return out


def x25519_public(private_key: bytes) -> bytes:
    if len(private_key) != 32:
        fail("invalid_key_length", "x25519")
    return sodium.crypto_scalarmult_base(bytes(private_key))


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac_sha256(salt if salt else bytes(32), ikm)


def hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    if length > 255 * 32:
        fail("limit_exceeded", "hkdf")
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac_sha256(prk, t + info + bytes([i]))
        out += t
        i += 1
    return out[:length]


def hkdf(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    return hkdf_expand(hkdf_extract(salt, ikm), info, length)


def aead_seal(key: bytes, nonce: bytes, aad: bytes, plaintext: bytes) -> bytes:
    if len(key) != 32 or len(nonce) != 12:
        fail("invalid_key_length", "chacha20poly1305")
    return sodium.crypto_aead_chacha20poly1305_ietf_encrypt(bytes(plaintext), bytes(aad) if aad else None,
                                                             bytes(nonce), bytes(key))


def aead_open(key: bytes, nonce: bytes, aad: bytes, ciphertext: bytes) -> bytes:
    if len(key) != 32 or len(nonce) != 12:
        fail("invalid_key_length", "chacha20poly1305")
    if len(ciphertext) < 16:
        fail("authentication_failure", "chacha20poly1305")
    try:
        return sodium.crypto_aead_chacha20poly1305_ietf_decrypt(bytes(ciphertext), bytes(aad) if aad else None,
                                                                bytes(nonce), bytes(key))
    except nacl.exceptions.CryptoError:
        fail("authentication_failure", "chacha20poly1305")


# --- labeled functions (RFC 9180 §4) ---------------------------------------------------------------------------

def labeled_extract(suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return hkdf_extract(salt, b"HPKE-v1" + suite_id + label + ikm)


def labeled_expand(suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    return hkdf_expand(prk, length.to_bytes(2, "big") + b"HPKE-v1" + suite_id + label + info, length)


# --- KEM -------------------------------------------------------------------------------------------------------

def derive_key_pair(ikm: bytes):
    """RFC 9180 §7.1.3 DeriveKeyPair for X25519: (skE, pkE)."""
    dkp_prk = labeled_extract(KEM_SUITE_ID, b"", b"dkp_prk", ikm)
    sk = labeled_expand(KEM_SUITE_ID, dkp_prk, b"sk", b"", 32)
    return sk, x25519_public(sk)


def _extract_and_expand(dh: bytes, kem_context: bytes) -> bytes:
    eae_prk = labeled_extract(KEM_SUITE_ID, b"", b"eae_prk", dh)
    return labeled_expand(KEM_SUITE_ID, eae_prk, b"shared_secret", kem_context, N_SECRET)


def encap(pk_r: bytes, sk_e: bytes):
    """Encap with the given ephemeral private key: (shared_secret, enc)."""
    pk_e = x25519_public(sk_e)
    dh = x25519(sk_e, pk_r)
    return _extract_and_expand(dh, pk_e + pk_r), pk_e


def decap(enc: bytes, sk_r: bytes) -> bytes:
    dh = x25519(sk_r, enc)
    pk_r = x25519_public(sk_r)
    return _extract_and_expand(dh, enc + pk_r)


# --- key schedule, base mode (RFC 9180 §5.1) -------------------------------------------------------------------

def key_schedule_base(shared_secret: bytes, info: bytes):
    """(key, base_nonce, exporter_secret)."""
    psk_id_hash = labeled_extract(HPKE_SUITE_ID, b"", b"psk_id_hash", b"")
    info_hash = labeled_extract(HPKE_SUITE_ID, b"", b"info_hash", info)
    context = bytes([MODE_BASE]) + psk_id_hash + info_hash
    secret = labeled_extract(HPKE_SUITE_ID, shared_secret, b"secret", b"")
    key = labeled_expand(HPKE_SUITE_ID, secret, b"key", context, N_K)
    base_nonce = labeled_expand(HPKE_SUITE_ID, secret, b"base_nonce", context, N_N)
    exporter_secret = labeled_expand(HPKE_SUITE_ID, secret, b"exp", context, N_H)
    return key, base_nonce, exporter_secret


def seal_base(pk_r: bytes, info: bytes, aad: bytes, plaintext: bytes, ikm_e: bytes = None, sk_e: bytes = None):
    """Single-shot SealBase: (enc, ciphertext). The ephemeral key comes from `sk_e`, or DeriveKeyPair(`ikm_e`),
    or fresh random bytes."""
    if sk_e is None:
        if ikm_e is None:
            import os
            ikm_e = os.urandom(32)
        sk_e, _ = derive_key_pair(ikm_e)
    shared_secret, enc = encap(pk_r, sk_e)
    key, base_nonce, _ = key_schedule_base(shared_secret, info)
    return enc, aead_seal(key, base_nonce, aad, plaintext)


def open_base(enc: bytes, sk_r: bytes, info: bytes, aad: bytes, ciphertext: bytes) -> bytes:
    shared_secret = decap(enc, sk_r)
    key, base_nonce, _ = key_schedule_base(shared_secret, info)
    return aead_open(key, base_nonce, aad, ciphertext)
