"""Live cross-tests: this Python implementation against a relay and a provider run from the Swift build.

The relay is `curbside relay serve` on 127.0.0.1 with port 0, in a temporary directory, stopped with SIGTERM at
the end. CURBSIDE_BIN names the binary (default: .build/debug/curbside in the repository). Without the binary
these tests are skipped, unless CURBSIDE_REQUIRE_LIVE=1, which makes that a failure.
"""

import hashlib
import json
import os
import re
import signal
import struct
import subprocess
import threading
import time
import zlib

import pytest

from curbside_interop import ed25519, relay
from curbside_interop.client import PinMismatch, RelayError, connect
from curbside_interop.provider import Attachment, Provider
from curbside_interop.safety import display, safety_number
from curbside_interop.structures import (CONSULT, DELIVERED, FAILED, FAILURE_REASONS, MESSAGE_LABEL, READ, RECEIPT,
                                         ROUTINE, Consult, Message, Party)

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
BIN = os.environ.get("CURBSIDE_BIN") or os.path.join(REPO, ".build", "debug", "curbside")
PASSPHRASE = "interop-test-passphrase"
SWIFT_HANDLE = "osei.derm"
PYTHON_HANDLE = "amara.gp"

if not os.access(BIN, os.X_OK) and os.environ.get("CURBSIDE_REQUIRE_LIVE") != "1":
    pytest.skip(f"no Swift build at {BIN}", allow_module_level=True)


def make_png(width: int, height: int, seed: bytes) -> bytes:
    """A valid RGB PNG with pseudo-random pixels (incompressible, so the file spans several chunks) and no
    text or EXIF chunks, so a sender's metadata filter leaves it as it is."""
    stream = hashlib.shake_256(seed).digest(width * height * 3)
    raw = b"".join(b"\x00" + stream[y * width * 3:(y + 1) * width * 3] for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def cli(*args, check=True, timeout=120):
    cmd = [BIN, *args]
    env = dict(os.environ, CURBSIDE_PASSPHRASE=PASSPHRASE)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}")
    return proc


def cli_json(*args, home):
    """A provider command with --json output, run on the profile in `home`."""
    args = list(args)
    if "--json" not in args:
        args.append("--json")
    return json.loads(cli(*args, "--home", home).stdout)


class Relay:
    def __init__(self, directory):
        self.data = os.path.join(directory, "relay")
        out = cli("relay", "init", "--data", self.data, "--listen", "127.0.0.1:0").stdout
        self.fingerprint = re.search(r"^fingerprint\s+([0-9a-f]{64})\s*$", out, re.M).group(1)
        self.log = []
        self.proc = subprocess.Popen([BIN, "relay", "serve", "--data", self.data], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        listening = threading.Event()
        self.port = None

        def drain():
            for line in self.proc.stderr:
                self.log.append(line.rstrip("\n"))
                m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
                if m and self.port is None:
                    self.port = int(m.group(1))
                    listening.set()
            listening.set()
        self.thread = threading.Thread(target=drain, daemon=True)
        self.thread.start()
        if not listening.wait(30) or self.port is None:
            self.stop()
            raise AssertionError("relay did not start:\n" + "\n".join(self.log))
        self.address = f"127.0.0.1:{self.port}"

    def enroll(self, handle: str) -> str:
        out = cli("relay", "enroll", "--data", self.data, handle).stdout
        return re.search(r"enrollment code for \S+: ([0-9A-Z]{5}(?:-[0-9A-Z]{5}){3})", out).group(1)

    def connect(self):
        return connect(self.address, self.fingerprint)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    if not os.access(BIN, os.X_OK):
        pytest.fail(f"live tests required (CURBSIDE_REQUIRE_LIVE=1) but {BIN} is missing", pytrace=False)
    directory = str(tmp_path_factory.mktemp("curbside-live"))
    server = Relay(directory)
    try:
        swift_home = os.path.join(directory, "swift-provider")
        code = server.enroll(SWIFT_HANDLE)
        cli("init", "--home", swift_home, "--handle", SWIFT_HANDLE, "--relay", server.address,
            "--relay-fingerprint", server.fingerprint, "--code", code)
        whoami = cli_json("whoami", home=swift_home)
        assert whoami["handle"] == SWIFT_HANDLE
        swift_party = Party.from_values(bytes.fromhex(whoami["identity_key"]), SWIFT_HANDLE)

        python = Provider(PYTHON_HANDLE)
        python_code = server.enroll(PYTHON_HANDLE)
        yield {"relay": server, "dir": directory, "swift_home": swift_home, "swift": swift_party,
               "python": python, "python_code": python_code, "state": {}}
    finally:
        server.stop()
        if server.proc.returncode not in (0, -signal.SIGTERM):
            print("relay log:\n" + "\n".join(server.log))
        assert server.proc.returncode in (0, -signal.SIGTERM), f"relay exited {server.proc.returncode}"


@pytest.fixture(scope="module")
def registered(live):
    """The Python provider registers with its enrollment code and publishes prekeys (once)."""
    python = live["python"]
    code = relay.normalise_enrollment_code(live["python_code"])
    # Asking first changes nothing: the code still registers, on the same connection.
    with live["relay"].connect() as conn:
        assert len(conn.channel_binding) == 32
        conn.check_enrollment(python.party.handle, code)
        python.register(conn, code)
        held = python.publish_prekeys(conn, one_time=10)
        assert held == 10
    return live


def test_enrollment_check_answers_as_registration_would(registered):
    """relay.md §Checking an enrollment code, against the Swift relay: a used code and a code made for another
    handle are refused as a registration would be; a fresh code is usable, and asking twice leaves it so."""
    live = registered
    python = live["python"]
    used = relay.normalise_enrollment_code(live["python_code"])
    fresh = relay.normalise_enrollment_code(live["relay"].enroll("zara.onc"))
    with live["relay"].connect() as conn:
        conn.check_enrollment(b"zara.onc", fresh)
        conn.check_enrollment(b"zara.onc", fresh)
    for handle, code, expected in [(python.party.handle, used, "enrollment_invalid"), (b"noor.neuro", fresh, "enrollment_invalid")]:
        with live["relay"].connect() as conn:
            with pytest.raises(RelayError) as info:
                conn.check_enrollment(handle, code)
            assert info.value.identifier == expected, info.value


def test_an_abandoned_upload_is_forgotten(registered):
    """relay.md §Attachments, against the Swift relay: a committed upload no envelope names is deleted by
    abandon_upload (opening it again starts from nothing), and abandoning twice, or an id never uploaded, is no error."""
    live = registered
    python = live["python"]
    data = os.urandom(1000)
    attachment_id = hashlib.sha256(data).digest()
    with live["relay"].connect() as conn:
        python.login(conn)
        conn.open_upload(attachment_id, len(data))
        conn.upload_chunk(attachment_id, 0, data)
        assert conn.commit_upload(attachment_id).state == relay.COMPLETE
        conn.abandon_upload(attachment_id)
        conn.abandon_upload(attachment_id)
        conn.abandon_upload(hashlib.sha256(b"never uploaded").digest())
        again = conn.open_upload(attachment_id, len(data))
        assert again.held == 0 and again.state == relay.UPLOADING, again
        conn.abandon_upload(attachment_id)


def test_an_upload_named_by_its_hash_at_commit(registered):
    """relay.md §Attachments, commit_upload_as, against the Swift relay: a file uploaded while it is produced,
    under a provisional id, is then the committed attachment named by its SHA-256; a commit naming the wrong hash
    is refused and discards the bytes; an id never opened is unknown_attachment."""
    live = registered
    python = live["python"]
    data = os.urandom(300_000)
    pieces = (data[i:i + 70_000] for i in range(0, len(data), 70_000))
    with live["relay"].connect() as conn:
        python.login(conn)
        with pytest.raises(RelayError) as info:
            conn.commit_upload_as(os.urandom(32), hashlib.sha256(data).digest(), len(data))
        assert info.value.identifier == "unknown_attachment", info.value
        attachment_id = conn.upload_as_encrypted(pieces, bound=len(data) + 1000, chunk_size=128 * 1024)
        assert attachment_id == hashlib.sha256(data).digest()
        status = conn.open_upload(attachment_id, len(data))
        assert status.state == relay.COMPLETE and status.held == len(data), status
        assert conn.download_all(attachment_id, len(data)) == data

        provisional = os.urandom(32)
        conn.open_upload(provisional, 2000)
        conn.upload_chunk(provisional, 0, data[:1500])
        with pytest.raises(RelayError) as info:
            conn.commit_upload_as(provisional, hashlib.sha256(data[:1499]).digest(), 1500)
        assert info.value.identifier == "attachment_hash_mismatch", info.value
        wrong = conn.open_upload(hashlib.sha256(data[:1499]).digest(), 1500)
        assert wrong.held == 0 and wrong.state == relay.UPLOADING, wrong
        conn.abandon_upload(hashlib.sha256(data[:1499]).digest())
        conn.abandon_upload(attachment_id)


def test_wrong_relay_key_is_refused(live):
    wrong = hashlib.sha256(b"not the relay").hexdigest()
    with pytest.raises(PinMismatch) as info:
        connect(live["relay"].address, wrong)
    assert info.value.presented == live["relay"].fingerprint


def test_python_consult_with_image_to_swift(registered):
    """(a) Python registers, fetches the Swift provider's bundle, sends a consult with an age-encrypted image
    uploaded through the relay; the Swift CLI lists it and saves the identical image."""
    live = registered
    python, swift_home = live["python"], live["swift_home"]
    image = make_png(320, 240, b"python-to-swift")  # about 230 KB: several upload and age chunks
    assert len(image) > 3 * 65536

    with live["relay"].connect() as conn:
        python.login(conn)
        message, stored = python.send_consult(
            conn, SWIFT_HANDLE, "Pigmented lesion, left forearm", "Does this need excision?",
            [Attachment(image, "image/png", "forearm.png")], specialty="dermatology",
            summary="54-year-old, lesion changed over three months.")
    # The bundle we sealed to is the Swift provider's real key (compared out of band, via whoami).
    assert python.pinned(SWIFT_HANDLE.encode()) == live["swift"]
    assert stored.envelope_id and stored.expires_at > stored.stored_at
    consult_id = message.message_id.hex()
    live["state"]["a_consult"] = message

    inbox = cli_json("inbox", "--json", home=swift_home)
    entry = [m for m in inbox["messages"] if m["id"] == consult_id]
    assert entry, inbox
    assert entry[0]["kind"] == "consult" and entry[0]["peer"] == PYTHON_HANDLE
    assert entry[0]["title"] == "Pigmented lesion, left forearm" and entry[0]["untrusted"] is False

    save_dir = os.path.join(live["dir"], "saved-by-swift")
    shown = cli_json("show", consult_id, "--save-dir", save_dir, "--json", home=swift_home)
    assert shown["message"]["question"] == "Does this need excision?"
    assert shown["message"]["specialty"] == "dermatology"
    attachments = shown["message"]["attachments"]
    assert len(attachments) == 1 and attachments[0]["state"] == "saved"
    descriptor = message.attachments[0]
    assert attachments[0]["sha256"] == descriptor.sha256.hex() and attachments[0]["size"] == descriptor.size
    assert len(shown["saved"]) == 1
    with open(shown["saved"][0], "rb") as f:
        saved = f.read()
    assert hashlib.sha256(saved).hexdigest() == hashlib.sha256(image).hexdigest()

    # Both sides compute the same safety number.
    contact = cli_json("contacts", "show", PYTHON_HANDLE, "--json", home=swift_home)
    assert contact["identity_key"] == python.party.identity_key.hex()
    assert contact["safety_number"] == " ".join(display(safety_number(python.party, live["swift"])).split())


def test_swift_receipts_reach_python(registered):
    """The Swift client answered (a) with end-to-end delivered and read receipts; Python opens and checks them."""
    live = registered
    consult = live["state"].get("a_consult")
    if consult is None:
        pytest.skip("needs test_python_consult_with_image_to_swift")
    python = live["python"]
    with live["relay"].connect() as conn:
        python.login(conn)
        received = python.receive(conn)
    receipts = [r.opened.message for r in received if r.opened.message.content_type == RECEIPT]
    kinds = {m.body.kind for m in receipts if m.body.message_id == consult.message_id}
    assert {DELIVERED, READ} <= kinds, receipts
    for m in receipts:
        assert m.sender == live["swift"] and m.recipient == python.party
        assert m.thread_id == consult.message_id and not m.attachments


def test_swift_consult_with_image_to_python(registered):
    """(b) The Swift CLI sends a consult with an image to the Python provider, which fetches, opens, verifies,
    downloads and decrypts the image (size and SHA-256 checked against the descriptor), acknowledges, and
    sends a delivered receipt that `curbside status` shows."""
    live = registered
    python, swift_home = live["python"], live["swift_home"]
    image = make_png(300, 200, b"swift-to-python")
    image_path = os.path.join(live["dir"], "scan.png")
    with open(image_path, "wb") as f:
        f.write(image)
    sent = cli_json("send", PYTHON_HANDLE, "--subject", "ECG question", "--question", "Is this rhythm benign?",
                    "--specialty", "cardiology", "--urgency", "urgent", "--image", image_path, "--json",
                    home=swift_home)
    assert sent["stored"] is True and sent["removed_metadata"] == []
    consult_id = bytes.fromhex(sent["id"])

    with live["relay"].connect() as conn:
        python.login(conn)
        received = python.receive(conn)  # opens, checks attachments, acknowledges
        match = [r for r in received if r.opened.message.message_id == consult_id]
        assert len(match) == 1, [r.opened.message for r in received]
        r = match[0]
        m = r.opened.message
        assert m.content_type == CONSULT and r.sender_handle == SWIFT_HANDLE.encode()
        assert m.sender == live["swift"] and m.recipient == python.party and m.thread_id == m.message_id
        assert m.body.subject == "ECG question" and m.body.question == "Is this rhythm benign?"
        assert m.body.specialty == "cardiology" and m.body.urgency == 2
        # the signature was verified by open_envelope; check it once more, explicitly
        assert ed25519.verify(m.sender.identity_key, MESSAGE_LABEL + r.opened.message_bytes, r.opened.signature)
        assert len(r.files) == 1
        descriptor, plaintext = r.files[0]
        assert descriptor.media_type == "image/png" and descriptor.file_name == "scan.png"
        assert plaintext == image

        # the relay deleted the acknowledged envelope
        assert not [d for d in conn.fetch(0, 100) if d.envelope_id == r.envelope_id]

        receipt, stored = python.send_receipt(conn, m, DELIVERED)
        assert receipt.body.message_id == consult_id and receipt.thread_id == consult_id

    status = None
    for _ in range(10):
        status = cli_json("status", sent["id"], "--json", home=swift_home)
        if status and status[0].get("delivered"):
            break
        time.sleep(0.5)
    assert status and status[0]["summary"]["id"] == sent["id"], status
    assert status[0].get("delivered"), status
    assert abs(status[0]["delivered"] - receipt.created_at) < 5000, status
    assert status[0].get("delivered_to_device"), status


def test_corrupt_attachment_gets_a_failed_receipt(registered):
    """Python sends a consult whose age file was changed after encryption (size and SHA-256 still match the
    descriptor, so only decryption can tell); the Swift client refuses the file and answers with a `failed`
    receipt, reason attachment_corrupt."""
    live = registered
    python, swift_home = live["python"], live["swift_home"]
    descriptor, encrypted = Provider.encrypt_attachment(Attachment(make_png(40, 30, b"corrupt"), "image/png",
                                                                   "damaged.png"))
    damaged = bytearray(encrypted)
    damaged[-20] ^= 0x01  # inside the last chunk's ciphertext
    damaged = bytes(damaged)
    descriptor = type(descriptor)(len(damaged), hashlib.sha256(damaged).digest(), descriptor.media_type,
                                  descriptor.file_name, descriptor.age_identity)
    with live["relay"].connect() as conn:
        python.login(conn)
        message, _ = python.send_consult(conn, SWIFT_HANDLE, "Damaged file", "Can you open this?",
                                         prepared=[(descriptor, damaged)])
    consult_id = message.message_id.hex()
    cli_json("inbox", home=swift_home)
    shown = cli_json("show", consult_id, "--save-dir", os.path.join(live["dir"], "corrupt"), home=swift_home)
    assert shown["message"]["attachments"][0]["state"] == "corrupt" and shown["saved"] == []
    with live["relay"].connect() as conn:
        python.login(conn)
        received = python.receive(conn)
    failed = [r.opened.message.body for r in received if r.opened.message.content_type == RECEIPT
              and r.opened.message.body.message_id == message.message_id and r.opened.message.body.kind == FAILED]
    assert failed and failed[0].reason == FAILURE_REASONS["attachment_corrupt"], received


def test_python_recipient_reports_corrupt_attachment(registered):
    """The Python receiving path on a damaged file: a second Python provider checks size and SHA-256 (they
    match), fails to decrypt, and answers with a failed receipt (attachment_corrupt) that the sender opens."""
    live = registered
    sender = live["python"]
    recipient = Provider("kofi.cardio")
    with live["relay"].connect() as conn:
        recipient.register(conn, relay.normalise_enrollment_code(live["relay"].enroll("kofi.cardio")))
        recipient.publish_prekeys(conn, one_time=2)
    descriptor, encrypted = Provider.encrypt_attachment(Attachment(b"ECG trace", "application/pdf", "ecg.pdf"))
    damaged = encrypted[:-1] + bytes([encrypted[-1] ^ 1])  # breaks the final chunk's tag
    descriptor = type(descriptor)(len(damaged), hashlib.sha256(damaged).digest(), descriptor.media_type,
                                  descriptor.file_name, descriptor.age_identity)
    with live["relay"].connect() as conn:
        sender.login(conn)
        message, _ = sender.send_consult(conn, "kofi.cardio", "ECG", "Benign?", prepared=[(descriptor, damaged)])
    with live["relay"].connect() as conn:
        recipient.login(conn)
        got = recipient.receive(conn)
        assert len(got) == 1 and got[0].problem is not None and got[0].problem.reason == "attachment_corrupt"
        assert got[0].files == []
    with live["relay"].connect() as conn:
        sender.login(conn)
        receipts = [r.opened.message.body for r in sender.receive(conn)
                    if r.opened.message.content_type == RECEIPT and r.opened.message.body.message_id == message.message_id]
    assert [(r.kind, r.reason) for r in receipts] == [(FAILED, FAILURE_REASONS["attachment_corrupt"])]


def test_swift_recipient_rejects_a_consult_from_the_end_of_time(registered):
    """A hostile sender (this implementation) signs a consult created at 2^64 - 1, past encoding.md §Times. The
    Swift recipient does not crash: `inbox` reports one message from the sender that could not be opened, a second
    `inbox` is quiet, and the sender gets a `rejected` notice with the reason, not delivered_to_device."""
    live = registered
    python, swift_home = live["python"], live["swift_home"]
    with live["relay"].connect() as conn:
        python.login(conn)
        bundle = python.fetch_verified_bundle(conn, SWIFT_HANDLE.encode())
        message_id = os.urandom(16)
        message = Message(python.party, bundle.owner, message_id, message_id, 2**64 - 1, CONSULT,
                          Consult("From the end of time", ROUTINE, "general", "Crash?", ""), [])
        stored = python._seal_and_send(conn, message, bundle)
    inbox = cli("inbox", "--home", swift_home)
    assert f"1 message from {PYTHON_HANDLE} could not be opened" in inbox.stdout, inbox.stdout
    again = cli_json("inbox", home=swift_home)
    assert any(u["sender"] == PYTHON_HANDLE and u["reason"] == "unsupported_content" and u["detail"] == "malformed_content"
               for u in again["unopened"])
    with live["relay"].connect() as conn:
        python.login(conn)
        notices = [n for n in conn.fetch_notices() if n.envelope_id == stored.envelope_id]
    assert [(n.kind, n.reason) for n in notices] == [(relay.NOTICE_REJECTED, FAILURE_REASONS["unsupported_content"])]


def test_login_with_another_key_is_refused(registered):
    live = registered
    with live["relay"].connect() as conn:
        with pytest.raises(RelayError) as info:
            conn.login(os.urandom(32), PYTHON_HANDLE.encode())
    assert info.value.identifier == "login_failed" and info.value.code == 505


def test_bound_login_logs_in_without_the_challenge(registered):
    """relay.md §Bound login, against the Swift relay: the first frame is a bound login, sent before the challenge
    is read; the challenge still comes first, the answer after it, and requests then work."""
    live = registered
    python = live["python"]
    with live["relay"].connect() as conn:
        conn.bound_login(python.identity_seed, python.party.handle)
        assert conn.challenge is not None
        conn.fetch_notices()


def test_bound_login_refusals(registered):
    """A bound login with another key, or signed over another connection's channel binding (replayed), is
    login_failed; a bound login after a login is unexpected_frame."""
    live = registered
    python = live["python"]
    with live["relay"].connect() as conn:
        with pytest.raises(RelayError) as info:
            conn.bound_login(os.urandom(32), python.party.handle)
    assert info.value.identifier == "login_failed"
    with live["relay"].connect() as first, live["relay"].connect() as second:
        with pytest.raises(RelayError) as info:
            second.bound_login(python.identity_seed, python.party.handle, channel_binding=first.channel_binding)
    assert info.value.identifier == "login_failed"
    with live["relay"].connect() as conn:
        python.login(conn)
        with pytest.raises(RelayError) as info:
            conn.bound_login(python.identity_seed, python.party.handle)
    assert info.value.identifier == "unexpected_frame"


def test_used_enrollment_code_is_refused(registered):
    live = registered
    with live["relay"].connect() as conn:
        with pytest.raises(RelayError) as info:
            conn.register(os.urandom(32), PYTHON_HANDLE.encode(),
                          relay.normalise_enrollment_code(live["python_code"]))
    assert info.value.identifier == "enrollment_invalid"
