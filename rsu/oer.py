"""The COER length determinant (ITU-T X.696 8.6), written and read in one place, sans-I/O.

Layer: plain octets. Used by the 1609.2 code (:mod:`rsu.security.coer`) and by the transports' walk
into signed data (:mod:`rsu.transports.envelope`), which wrap :class:`LengthError` in their own errors.
"""

from __future__ import annotations


class LengthError(ValueError):
    """No valid length determinant at the offset; ``truncated`` when the data ends before one."""

    def __init__(self, truncated: bool) -> None:
        super().__init__("truncated length determinant" if truncated else "bad length determinant")
        self.truncated = truncated


def length_prefix(n: int) -> bytes:
    """The length determinant of ``n`` octets: short form below 128, else long form (minimal)."""
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def read_length(data: bytes, offset: int, max_octets: int | None = None) -> tuple[int, int]:
    """The length determinant at ``offset`` -> (length, offset after it). A long form of more than
    ``max_octets`` length octets (when given), of none, or running past the data is a LengthError."""
    if offset >= len(data):
        raise LengthError(truncated=True)
    first = data[offset]
    if first < 0x80:
        return first, offset + 1
    n = first & 0x7F
    if n == 0 or (max_octets is not None and n > max_octets) or offset + 1 + n > len(data):
        raise LengthError(truncated=False)
    return int.from_bytes(data[offset + 1 : offset + 1 + n], "big"), offset + 1 + n
