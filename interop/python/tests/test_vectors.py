"""Runs every case of every file in spec/vectors/ (spec/vectors/README.md)."""

import glob
import json
import os

import pytest

from curbside_interop import age, relay
from curbside_interop.encoding import decode_top
from curbside_interop.envelope import open_envelope, seal
from curbside_interop.errors import NUMBERS, CurbsideError
from curbside_interop.keys import verify_bundle
from curbside_interop.safety import safety_number
from curbside_interop.structures import (PREKEY_ONE_TIME, PREKEY_SIGNED, AttachmentDescriptor, Consult, Message,
                                         Party, PrekeyBundle, Receipt, Reply, SealedEnvelope, read_handle)

VECTORS = os.environ.get("CURBSIDE_VECTORS") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "spec", "vectors")


class VectorFileError(Exception):
    pass


def load(path):
    with open(path) as f:
        doc = json.load(f)
    cases = doc.get("cases")
    if not isinstance(cases, list) or not cases:
        raise VectorFileError(f"{os.path.basename(path)}: no cases")
    if doc.get("count") != len(cases):
        raise VectorFileError(f"{os.path.basename(path)}: count {doc.get('count')} but {len(cases)} cases")
    return cases


def outcome(expect, action):
    """Run `action`; `valid` means it must succeed, anything else must be the exact error identifier."""
    if expect != "valid" and expect not in NUMBERS:
        pytest.fail(f"unknown expect value {expect!r}")
    if expect == "valid":
        return action()
    with pytest.raises(CurbsideError) as info:
        action()
    assert info.value.identifier == expect, f"expected {expect}, got {info.value.identifier} ({info.value})"


h = bytes.fromhex


# --- encoding.json ---------------------------------------------------------------------------------------------

ENCODING_TYPES = {
    "consult": (Consult.read, Consult.encode),
    "reply": (Reply.read, Reply.encode),
    "receipt": (Receipt.read, Receipt.encode),
    "handle": (read_handle, lambda v: bytes([len(v)]) + v),
    "attachment": (AttachmentDescriptor.read, AttachmentDescriptor.encode),
    "prekey_bundle": (PrekeyBundle.read, PrekeyBundle.encode),
    "message": (Message.read, Message.encode),
    "envelope": (SealedEnvelope.read, SealedEnvelope.encode),
}


def run_encoding(case):
    if case["type"] not in ENCODING_TYPES:
        pytest.fail(f"unknown type {case['type']!r}")
    read, write = ENCODING_TYPES[case["type"]]
    data = h(case["input"])

    def action():
        value = decode_top(data, read)
        assert write(value) == data, "re-encoding differs"
    outcome(case["expect"], action)


# --- bundles.json ----------------------------------------------------------------------------------------------

def party(obj):
    return Party.from_values(h(obj["identity_key"]), obj["handle"])


def run_bundle(case):
    def action():
        bundle = PrekeyBundle.decode(h(case["bundle"]))
        expected = party(case["expected_owner"]) if "expected_owner" in case else None
        verify_bundle(bundle, case["now"], expected)
    outcome(case["expect"], action)


# --- envelopes.json --------------------------------------------------------------------------------------------

def run_envelope(case):
    recipient = party(case["recipient"])
    prekeys = {}
    for p in case["prekeys"].get("signed", []):
        prekeys[(PREKEY_SIGNED, p["id"])] = h(p["private_key"])
    for p in case["prekeys"].get("one_time", []):
        prekeys[(PREKEY_ONE_TIME, p["id"])] = h(p["private_key"])
    data = h(case["envelope"])

    def action():
        opened = open_envelope(data, recipient, prekeys)
        assert opened.message.encode() == h(case["message"]), "opened message differs"
        assert opened.message_bytes == h(case["message"])
    outcome(case["expect"], action)
    if "seal" in case:
        s = case["seal"]
        message = Message.decode(h(case["message"]))
        sealed = seal(message, h(s["sender_identity_seed"]), PrekeyBundle.decode(h(s["bundle"])), s["now"],
                      ephemeral_ikm=h(s["ephemeral_ikm"]))
        assert sealed == data, "sealing does not reproduce the envelope"


# --- safety-numbers.json ---------------------------------------------------------------------------------------

def run_safety(case):
    def action():
        a, b = party(case["a"]), party(case["b"])
        assert safety_number(a, b) == case["safety_number"]
        assert safety_number(b, a) == case["safety_number"]
    outcome(case["expect"], action)


# --- relay.json ------------------------------------------------------------------------------------------------

def run_relay(case):
    kind = case["kind"]
    if kind == "frames":
        def action():
            got = []
            for frame in relay.iter_frames(h(case["stream"]), case["maximum_length"]):
                value = relay.decode_body(frame.type, frame.body)
                if hasattr(value, "encode"):
                    assert value.encode() == frame.body, "re-encoding a body differs"
                got.append({"type": frame.type, "request_id": frame.request_id, "body": frame.body.hex()})
            assert got == case["frames"]
        outcome(case["expect"], action)
    elif kind == "bound_login":
        seed, handle = h(case["identity_seed"]), case["handle"].encode()
        cb = h(case["channel_binding"])
        body = decode_top(h(case["bound_login"]), relay.BoundLogin.read)
        mine = relay.make_bound_login(seed, handle, cb)
        assert body.handle == handle

        def action():
            relay.verify_bound_login(body, h(case["registered_key"]), cb)
            assert mine.encode() == h(case["bound_login"]), "client signature differs"
        outcome(case["expect"], action)
    elif kind in ("login", "register"):
        seed, handle = h(case["identity_seed"]), case["handle"].encode()
        challenge = decode_top(h(case["challenge"]), relay.Challenge.read)
        cb = h(case["channel_binding"])
        if kind == "login":
            body = decode_top(h(case["login"]), relay.Login.read)
            mine = relay.make_login(seed, handle, challenge.nonce, cb)

            def action():
                relay.verify_login(body, h(case["registered_key"]), challenge.nonce, cb)
                assert mine.encode() == h(case["login"]), "client signature differs"
        else:
            body = decode_top(h(case["register"]), relay.Register.read)
            mine = relay.make_register(seed, handle, body.enrollment_code, challenge.nonce, cb)

            def action():
                relay.verify_register(body, challenge.nonce, cb)
                assert mine.encode() == h(case["register"]), "client signature differs"
        outcome(case["expect"], action)
    else:
        pytest.fail(f"unknown relay case kind {kind!r}")


# --- age.json --------------------------------------------------------------------------------------------------

def run_age(case):
    identity = age.parse_identity(case["identity"])
    data = h(case["file"])

    def action():
        plaintext = age.decrypt(data, identity)
        assert plaintext == h(case["plaintext"]), "plaintext differs"
        again = age.encrypt(plaintext, age.parse_recipient(age.encode_recipient(age.hpke.x25519_public(identity))),
                            file_key=h(case["file_key"]), ephemeral_secret=h(case["ephemeral_secret"]),
                            payload_nonce=h(case["payload_nonce"]))
        assert again == data, "encryption does not reproduce the file"
    outcome(case["expect"], action)


RUNNERS = {
    "encoding.json": run_encoding,
    "bundles.json": run_bundle,
    "envelopes.json": run_envelope,
    "safety-numbers.json": run_safety,
    "relay.json": run_relay,
    "age.json": run_age,
}


def _params():
    out = []
    for path in sorted(glob.glob(os.path.join(VECTORS, "*.json"))):
        name = os.path.basename(path)
        try:
            cases = load(path)
        except Exception as e:  # a broken file becomes one failing case
            out.append(pytest.param(name, None, e, id=f"{name}:LOAD"))
            continue
        for i, case in enumerate(cases):
            out.append(pytest.param(name, case, None, id=f"{name}:{i}:{case.get('name', '?')}"))
    return out


def test_vector_files_present():
    files = sorted(os.path.basename(p) for p in glob.glob(os.path.join(VECTORS, "*.json")))
    assert files, f"no vector files in {VECTORS}"
    unknown = [f for f in files if f not in RUNNERS]
    assert not unknown, f"vector files this runner does not know: {unknown}"


@pytest.mark.parametrize("file,case,error", _params())
def test_vector_case(file, case, error):
    if error is not None:
        pytest.fail(f"refused {file}: {error}")
    if file not in RUNNERS:
        pytest.fail(f"unknown vector file {file}")
    if case.get("expect") is None:
        pytest.fail("case without expect")
    RUNNERS[file](case)
