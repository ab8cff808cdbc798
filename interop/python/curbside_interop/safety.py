"""Safety numbers (spec/safety-number.md)."""

import hashlib

from .structures import Party

LABEL = b"curbside/v1/safety-number\x00"


def half(party: Party) -> str:
    digest = hashlib.sha256(LABEL + party.encode()).digest()
    return "".join("%05d" % (int.from_bytes(digest[i:i + 5], "big") % 100000) for i in range(0, 30, 5))


def safety_number(a: Party, b: Party) -> str:
    ha, hb = half(a), half(b)
    return ha + hb if ha <= hb else hb + ha


def display(number: str) -> str:
    groups = [number[i:i + 5] for i in range(0, 60, 5)]
    return "\n".join(" ".join(groups[i:i + 4]) for i in range(0, 12, 4))
