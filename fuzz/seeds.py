#!/usr/bin/env python3
"""Seeds each harness's corpus from spec/vectors: every hex string in the harness's vector files becomes one file."""
import json
import os
import re
import sys

HEX = re.compile(r"^(?:[0-9a-f]{2})+$")
SOURCES = {
    "fuzz-frames": ["relay.json", "encoding.json"],
    "fuzz-envelope": ["envelopes.json", "encoding.json"],
    "fuzz-bundle": ["bundles.json", "encoding.json"],
    "fuzz-age": ["age.json"],
    "fuzz-receive": ["encoding.json", "envelopes.json"],
}
# fuzz-receive reads a mode byte first (ReceivePathHarness): each byte string is seeded as a delivered envelope (0),
# as a message re-addressed and signed by the pinned sender to a one-time prekey (1, 1), by an unpinned key to the
# signed prekey (2, 0), by another account (3, 1), and as a raw plaintext (4).
PREFIXES = {"fuzz-receive": [b"\x00", b"\x01\x01", b"\x02\x00", b"\x03\x01", b"\x04"]}


def strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


vectors, corpora = sys.argv[1], sys.argv[2]
for harness, files in SOURCES.items():
    directory = os.path.join(corpora, harness)
    os.makedirs(directory, exist_ok=True)
    count = 0
    for name in files:
        for text in strings(json.load(open(os.path.join(vectors, name)))):
            if HEX.match(text):
                for prefix in PREFIXES.get(harness, [b""]):
                    with open(os.path.join(directory, f"seed-{name[:-5]}-{count}"), "wb") as out:
                        out.write(prefix + bytes.fromhex(text))
                    count += 1
    print(f"{harness}: {count} seeds", file=sys.stderr)
