"""An independent Python implementation of the Curbside protocol, written from spec/ alone."""

from .errors import CODES, NUMBERS, CurbsideError  # noqa: F401
