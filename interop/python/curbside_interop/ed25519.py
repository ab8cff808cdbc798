"""Ed25519 as spec/keys.md uses it.

Signing is libsodium's (through PyNaCl): Ed25519 signing is deterministic, so any correct implementation gives
the same bytes. Key validation and signature verification are written out here from keys.md §Validating an
identity key and §Verifying a signature, so that the accept/reject decision is the one the specification fixes
and does not depend on the libsodium release PyNaCl happens to bundle.
"""

import hashlib

import nacl.bindings as sodium

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)

# Extended homogeneous coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, x*y = T/Z.
NEUTRAL = (0, 1, 1, 0)


def _add(p1, p2):
    x1, y1, z1, t1 = p1
    x2, y2, z2, t2 = p2
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = 2 * t1 * t2 * D % P
    dd = 2 * z1 * z2 % P
    e, f, g, h = b - a, dd - c, dd + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _double(p1):
    x1, y1, z1, _ = p1
    a = x1 * x1 % P
    b = y1 * y1 % P
    c = 2 * z1 * z1 % P
    h = a + b
    e = h - (x1 + y1) * (x1 + y1)
    g = a - b
    f = c + g
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _mul(k, point):
    result = NEUTRAL
    addend = point
    while k > 0:
        if k & 1:
            result = _add(result, addend)
        addend = _double(addend)
        k >>= 1
    return result


def _neg(point):
    x, y, z, t = point
    return ((-x) % P, y, z, (-t) % P)


def _is_neutral(point):
    x, y, z, _ = point
    return x % P == 0 and (y - z) % P == 0


def _encode(point):
    x, y, z, _ = point
    zinv = pow(z, P - 2, P)
    x = x * zinv % P
    y = y * zinv % P
    return int.to_bytes(y | ((x & 1) << 255), 32, "little")


def _recover_x(y, sign):
    """RFC 8032 §5.1.3 steps 2-4. Returns None when there is no such point."""
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        if sign:
            return None
        return 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    if (x & 1) != sign:
        x = P - x
    return x


def _decode(data):
    """RFC 8032 §5.1.3 decoding of a 32-byte string; None if it is not a canonical point encoding."""
    if len(data) != 32:
        return None
    n = int.from_bytes(data, "little")
    sign = n >> 255
    y = n & ((1 << 255) - 1)
    if y >= P:
        return None
    x = _recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % P)


BASE = _decode(bytes.fromhex("5866666666666666666666666666666666666666666666666666666666666666"))


def is_valid_public_key(key: bytes) -> bool:
    """keys.md §Validating an identity key: canonical, a point, not of small order, in the prime-order subgroup."""
    if len(key) != 32:
        return False
    point = _decode(key)
    if point is None:
        return False
    if _is_neutral(_mul(8, point)):
        return False
    return _is_neutral(_mul(L, point))


# keys.md §Verifying a signature, rule 2 (compared with the top bit of the last byte cleared).
_SMALL_ORDER_R = [bytes.fromhex(h) for h in (
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
)]


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """keys.md §Verifying a signature (the cofactorless equation, R compared as bytes)."""
    if len(signature) != 64 or not is_valid_public_key(public_key):
        return False
    r, s = signature[:32], signature[32:]
    s_int = int.from_bytes(s, "little")
    if s_int >= L:
        return False
    r_masked = r[:31] + bytes([r[31] & 0x7F])
    if r_masked in _SMALL_ORDER_R:
        return False
    a_point = _decode(public_key)
    k = int.from_bytes(hashlib.sha512(r + public_key + message).digest(), "little") % L
    r_prime = _add(_mul(s_int, BASE), _neg(_mul(k, a_point)))
    return _encode(r_prime) == r


def keypair_from_seed(seed: bytes):
    """(public key, libsodium 64-byte secret key) from a 32-byte RFC 8032 seed."""
    from .errors import fail
    if len(seed) != 32:
        fail("invalid_key_length", "seed")
    return sodium.crypto_sign_seed_keypair(seed)


def public_key_from_seed(seed: bytes) -> bytes:
    return keypair_from_seed(seed)[0]


def sign(seed: bytes, message: bytes) -> bytes:
    _, secret = keypair_from_seed(seed)
    return sodium.crypto_sign(message, secret)[:64]
