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
}


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
                with open(os.path.join(directory, f"seed-{name[:-5]}-{count}"), "wb") as out:
                    out.write(bytes.fromhex(text))
                count += 1
    print(f"{harness}: {count} seeds", file=sys.stderr)
