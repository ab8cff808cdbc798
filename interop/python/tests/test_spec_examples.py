"""The worked examples written in spec/*.md, the RFC 9180 vector for our suite, and a few properties."""

import hashlib
import json
import os

import nacl.bindings as sodium
import pytest

from curbside_interop import age, ed25519, hpke, relay
from curbside_interop.encoding import decode_top
from curbside_interop.envelope import INFO, open_envelope, seal
from curbside_interop.errors import CODES, CurbsideError
from curbside_interop.safety import display, half, safety_number
from curbside_interop.structures import (CONSULT, PREKEY_ONE_TIME, ROUTINE, Consult, Message, Party,
                                         PrekeyBundle)

h = bytes.fromhex
VECTORS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "spec", "vectors")


def vectors(name):
    with open(os.path.join(VECTORS, name)) as f:
        return json.load(f)["cases"]


def test_error_table_is_complete():
    assert len(CODES) == 58 and CODES[101] == "truncated" and CODES[609] == "age_malformed_key"
    assert CODES[522] == "store_unavailable"


def test_rfc9180_a21_base_seq0():
    info = h("4f6465206f6e2061204772656369616e2055726e")
    sk_e, pk_e = hpke.derive_key_pair(h("909a9b35d3dc4713a5e72a4da274b55d3d3821a37e5d099e74a647db583a904b"))
    assert sk_e == h("f4ec9b33b792c372c1d2c2063507b684ef925b8c75a42dbcbf57d63ccd381600")
    assert pk_e == h("1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a")
    sk_r, pk_r = hpke.derive_key_pair(h("1ac01f181fdf9f352797655161c58b75c656a6cc2716dcb66372da835542e1df"))
    assert sk_r == h("8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb")
    assert pk_r == h("4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a")
    shared, enc = hpke.encap(pk_r, sk_e)
    assert shared == h("0bbe78490412b4bbea4812666f7916932b828bba79942424abb65244930d69a7")
    key, nonce, _ = hpke.key_schedule_base(shared, info)
    assert key == h("ad2744de8e17f4ebba575b3f5f5a8fa1f69c2a07f6e7500bc60ca6e3e3ec1c91")
    assert nonce == h("5c4d98150661b848853b547f")
    pt, aad = h("4265617574792069732074727574682c20747275746820626561757479"), h("436f756e742d30")
    ct = h("1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d2dd1b51a28")
    assert hpke.seal_base(pk_r, info, aad, pt, sk_e=sk_e) == (enc, ct)
    assert hpke.open_base(enc, sk_r, info, aad, ct) == pt
    with pytest.raises(CurbsideError) as e:
        hpke.open_base(enc, sk_r, info, aad, ct[:-1] + bytes([ct[-1] ^ 1]))
    assert e.value.identifier == "authentication_failure"


def test_hpke_worked_example():
    """hpke.md §Worked example: every intermediate value."""
    sk_e, pk_e = hpke.derive_key_pair(h("5fbf560402c26cbeef16468728f0eb62f407a9aee9d598d421eea0b74162906a"))
    assert sk_e == h("4b4c1818ba8a7fd7a9df4c3399cb15ebc8cd9eabb9b2d6c54213140f1b20a7aa")
    assert pk_e == h("0402bfc48ab39e96413533283629743279a77ca6ea5816cda64c9ebf2c4c6341")
    sk_r = h("6c8739c64488dffbb0b21c8c2ee2667e334507245187ff6834ff5c1b7fda07cf")
    pk_r = h("103f74b2713f861b6c9aa7ff7767f1dd969141b9a702b8c89d56fa3b6647f13c")
    assert hpke.x25519_public(sk_r) == pk_r
    assert hpke.x25519(sk_e, pk_r) == h("0a87ddc1792c1b9eaf57a5a0a9bf37b04d2d1aba283a108e799c7b6f17a9ae11")
    shared, _ = hpke.encap(pk_r, sk_e)
    assert shared == h("82f6b70665ec3fc77223fd00d1a1c082637432d2dd793ebac952d580ecae9af0")
    assert hpke.labeled_extract(hpke.HPKE_SUITE_ID, b"", b"psk_id_hash", b"") == h(
        "431df6cd95e11ff49d7013563baf7f11588c75a6611ee2a4404a49306ae4cfc5")
    assert hpke.labeled_extract(hpke.HPKE_SUITE_ID, b"", b"info_hash", INFO) == h(
        "235e2eb15b8392d66c3cdcafca741b769354e7982b1a8a62e08a07a1aae6a390")
    assert hpke.labeled_extract(hpke.HPKE_SUITE_ID, shared, b"secret", b"") == h(
        "643b61f7918dc54b817dc72a8fed7e35cb3c7c681aa81beef315df839bf138e8")
    key, nonce, _ = hpke.key_schedule_base(shared, INFO)
    assert key == h("320a81b2fb2162dd29ab3b73b5770f5b208819d382d2b794843d089c6bf305e1")
    assert nonce == h("1eb85c331b024681f2731c6e")
    envelope = h(vectors("envelopes.json")[0]["envelope"])
    assert len(envelope) == 515
    assert envelope[44:60] == h("b04c76bbb60551a49792460f702e00c7")
    assert envelope[-16:] == h("2532365555afd18abfdde77553133655")


def test_prekey_signature_examples():
    """keys.md: the signed bytes and signatures of signed prekey 1 and one-time prekey 100 of osei.derm."""
    bundle = PrekeyBundle.decode(h(vectors("bundles.json")[0]["bundle"]))
    key = bundle.owner.identity_key
    assert key == h("86fb4e01652e181bd7349e5f98e1b9260b4c7a9fd683e67bea6c2b3cb27bb50b")
    assert bundle.signed_prekey.signed_bytes(key) == h(
        "63757262736964652f76312f7369676e65642d7072656b657900" + key.hex() + "00000001"
        "77728ec72a16463c6898723c656321ce58f5c50129795ac057061827792da95b" "0000019c11597000")
    assert bundle.signed_prekey.signature == h(
        "22ce37a5b379939e74c1d8eb7355060fdf1378d88bd6069e1cdd533274a96e09"
        "8792c5dc134ef4a58f27fa0f01f2cb2e0d0f6f6cbfd346d62347ad4f3c95a709")
    otk = bundle.one_time_prekey
    assert otk.signed_bytes(key) == h(
        "63757262736964652f76312f6f6e652d74696d652d7072656b657900" + key.hex() + "00000064"
        "103f74b2713f861b6c9aa7ff7767f1dd969141b9a702b8c89d56fa3b6647f13c")
    assert otk.signature == h("11e584be09ce953de4351f332df5965819b162f7510c95ddb64a50c91be59638"
                              "7ecf77dda3ed10b522558d594575dde6935ae27468a1e13df7949ce261c5a503")
    assert len(bundle.encode()) == 252


def test_vector_secrets_rebuild():
    """vectors/README.md: every secret is SHA-256("curbside-vectors/" ‖ label)."""
    def secret(label):
        return hashlib.sha256(b"curbside-vectors/" + label.encode()).digest()
    assert ed25519.public_key_from_seed(secret("osei.derm/identity")) == h(
        "86fb4e01652e181bd7349e5f98e1b9260b4c7a9fd683e67bea6c2b3cb27bb50b")
    assert hpke.x25519_public(secret("osei.derm/one-time-prekey/100")) == h(
        "103f74b2713f861b6c9aa7ff7767f1dd969141b9a702b8c89d56fa3b6647f13c")
    assert age.encode_identity(secret("image-1/age-identity")) == vectors("age.json")[0]["identity"]


def test_safety_number_example():
    a = Party.from_values(ed25519.public_key_from_seed(bytes([1]) * 32), "amara.gp")
    b = Party.from_values(ed25519.public_key_from_seed(bytes([2]) * 32), "osei.derm")
    assert a.identity_key == h("8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c")
    assert half(a) == "942240050743444314899579508368"
    assert half(b) == "294551538869132241171213325413"
    number = safety_number(a, b)
    assert number == "294551538869132241171213325413942240050743444314899579508368"
    assert display(number) == ("29455 15388 69132 24117\n12133 25413 94224 00507\n43444 31489 95795 08368")


def test_encoding_worked_example():
    consult = Consult("Rash", ROUTINE, "dermatology", "Eczema or psoriasis?", "")
    assert consult.encode() == h("000452617368010b6465726d61746f6c6f6779001445637a656d61206f722070736f7269617369733f0000")
    for bad, err in (("", "length_out_of_bounds"), ("a\rb", "invalid_text"), ("x" * 257, "length_out_of_bounds")):
        with pytest.raises(CurbsideError) as e:
            Consult(bad, ROUTINE, "d", "q").encode()
        assert e.value.identifier == err


def test_relay_frame_example():
    assert relay.encode_frame(0x0004, 7) == h("000000060004" "00000007")


def test_signature_edge_cases():
    seed = os.urandom(32)
    pk = ed25519.public_key_from_seed(seed)
    sig = ed25519.sign(seed, b"m")
    assert ed25519.verify(pk, b"m", sig)
    # S + L: same value mod L, but rule 1 rejects it
    s_plus_l = (int.from_bytes(sig[32:], "little") + ed25519.L).to_bytes(32, "little")
    assert not ed25519.verify(pk, b"m", sig[:32] + s_plus_l)
    # small-order R (the neutral element) with S = 0: rejected by rule 2
    assert not ed25519.verify(pk, b"m", h("01" + "00" * 31) + bytes(32))
    # the neutral element and a non-canonical key are not valid identity keys
    assert not ed25519.is_valid_public_key(h("01" + "00" * 31))
    assert not ed25519.is_valid_public_key(h("ed" + "ff" * 30 + "7f"))


def test_point_validation_agrees_with_libsodium():
    for _ in range(64):
        b = os.urandom(32)
        assert ed25519.is_valid_public_key(b) == bool(sodium.crypto_core_ed25519_is_valid_point(b))
        k = ed25519.public_key_from_seed(os.urandom(32))
        assert ed25519.is_valid_public_key(k) and sodium.crypto_core_ed25519_is_valid_point(k)


@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 65537, 3 * 65536, 200000])
def test_age_round_trip(size):
    identity = os.urandom(32)
    data = os.urandom(size)
    recipient = age.parse_recipient(age.encode_recipient(hpke.x25519_public(identity)))
    encrypted = age.encrypt(data, recipient)
    assert age.decrypt(encrypted, identity) == data
    with pytest.raises(CurbsideError) as e:
        age.decrypt(encrypted, os.urandom(32))
    assert e.value.identifier == "age_no_matching_identity"


def test_age_keys():
    with pytest.raises(CurbsideError) as e:
        age.parse_identity("AGE-SECRET-KEY-1qqqq")
    assert e.value.identifier == "age_malformed_key"
    ident = vectors("age.json")[0]["identity"]
    with pytest.raises(CurbsideError) as e:
        age.parse_recipient(ident)
    assert e.value.identifier == "age_malformed_key"
    with pytest.raises(CurbsideError):
        age.parse_identity(ident[:-1] + ("Q" if ident[-1] != "Q" else "P"))


def test_enrollment_code_normalisation():
    assert relay.normalise_enrollment_code("abcde-fghij-k0m1n-pqrst") == b"ABCDEFGH1JK0M1NPQRST"
    assert relay.normalise_enrollment_code("oiL00 11111 22222 33333") == b"01100111112222233333"
    with pytest.raises(CurbsideError) as e:
        relay.normalise_enrollment_code("UUUUU-11111-22222-33333")
    assert e.value.identifier == "enrollment_invalid"


def test_seal_and_open_round_trip_and_sealing_errors():
    case = vectors("envelopes.json")[0]
    message = Message.decode(h(case["message"]))
    seed = h(case["seal"]["sender_identity_seed"])
    bundle = PrekeyBundle.decode(h(case["seal"]["bundle"]))
    now = case["seal"]["now"]
    env = seal(message, seed, bundle, now)
    keys = {(PREKEY_ONE_TIME, 100): h(case["prekeys"]["one_time"][0]["private_key"])}
    assert open_envelope(env, bundle.owner, keys).message == message
    other = Party.from_values(ed25519.public_key_from_seed(os.urandom(32)), "someone.else")
    with pytest.raises(CurbsideError) as e:
        seal(Message(message.sender, other, message.message_id, message.thread_id, 0, CONSULT, message.body),
             seed, bundle, now)
    assert e.value.identifier == "recipient_mismatch"
    with pytest.raises(CurbsideError) as e:
        seal(message, os.urandom(32), bundle, now)
    assert e.value.identifier == "sender_key_mismatch"
    with pytest.raises(CurbsideError) as e:
        seal(message, seed, bundle, bundle.signed_prekey.expires_at)
    assert e.value.identifier == "prekey_expired"
    with pytest.raises(CurbsideError) as e:
        seal(message, seed, bundle, now, expected=other)
    assert e.value.identifier == "identity_mismatch"


def test_login_channel_binding_matters():
    case = [c for c in vectors("relay.json") if c["kind"] == "login" and c["expect"] == "valid"][0]
    challenge = decode_top(h(case["challenge"]), relay.Challenge.read)
    login = relay.make_login(h(case["identity_seed"]), case["handle"].encode(), challenge.nonce,
                             h(case["channel_binding"]))
    relay.verify_login(login, h(case["registered_key"]), challenge.nonce, h(case["channel_binding"]))
    with pytest.raises(CurbsideError) as e:
        relay.verify_login(login, h(case["registered_key"]), challenge.nonce, os.urandom(32))
    assert e.value.identifier == "login_failed"


def test_bound_login_label_and_binding():
    """relay.md §Bound login: the label's 30 bytes as the spec lists them, and a bound login verifies only with the
    binding it signed."""
    assert relay.BOUND_LOGIN_LABEL == h("63757262736964652f76312f72656c61792d6c6f67696e2d626f756e6400")
    assert len(relay.BOUND_LOGIN_LABEL) == 30
    case = [c for c in vectors("relay.json") if c["kind"] == "bound_login" and c["expect"] == "valid"][0]
    login = relay.make_bound_login(h(case["identity_seed"]), case["handle"].encode(), h(case["channel_binding"]))
    relay.verify_bound_login(login, h(case["registered_key"]), h(case["channel_binding"]))
    with pytest.raises(CurbsideError) as e:
        relay.verify_bound_login(login, h(case["registered_key"]), os.urandom(32))
    assert e.value.identifier == "login_failed"
