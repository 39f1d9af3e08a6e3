"""COER access to the security modules (``asn1/security``): whole-value codec plus byte spans.

Layer: IEEE 1609.2 / TS 103 097 structures only (COER, ITU-T X.696). The facilities
PDU inside them is opaque bytes here.

Signatures and HashedId8 are computed over bytes *as received*. asn1tools only gives
decoded values, so :func:`decode_prefix` decodes one type at an offset and also
returns where it ended; the callers slice the original bytes with that (tbsData of
a message, the signer certificate, toBeSigned of a certificate). Nothing received
is ever re-encoded to be hashed.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from rsu import oer
from rsu.codec.asn1files import compile_set


class CoerError(Exception):
    """Bytes that are not a valid COER encoding of the expected type."""


class Codec:
    """COER codec of one compiled module set (``security``; ``security+pki`` for TS 102 941)."""

    def __init__(self, set_name: str) -> None:
        self.set_name = set_name

    @property
    def spec(self) -> Any:
        """The compiled asn1tools OER specification (compiled once per process, see compile_set)."""
        return compile_set(self.set_name, "oer").spec

    def encode(self, type_name: str, value: Any) -> bytes:
        try:
            return bytes(self.spec.encode(type_name, value))
        except Exception as e:  # asn1tools raises many types; callers get one
            raise CoerError(f"cannot encode {type_name}: {e}") from None

    def decode(self, type_name: str, data: bytes) -> Any:
        """Decode a whole value; trailing bytes are an error."""
        value, end = self.decode_prefix(type_name, data, 0)
        if end != len(data):
            raise CoerError(f"{type_name}: {len(data) - end} unexpected trailing bytes")
        return value

    def decode_prefix(self, type_name: str, data: bytes, offset: int = 0) -> tuple[Any, int]:
        """Decode one ``type_name`` starting at ``offset``; returns (value, end offset)."""
        compiled = self.spec.types[type_name]  # loads asn1tools (on first use)
        from asn1tools.codecs.oer import Decoder as _OerDecoder

        if offset > len(data):
            raise CoerError(f"{type_name}: truncated")
        decoder = _OerDecoder(bytearray(data[offset:]))
        try:
            value = compiled._type.decode(decoder)
        except Exception as e:
            raise CoerError(f"{type_name}: {e}") from None
        if decoder.number_of_read_bits() % 8:  # pragma: no cover - OER is octet aligned
            raise CoerError(f"{type_name}: not octet aligned")
        return value, offset + decoder.number_of_read_bits() // 8


SECURITY = Codec("security")


@lru_cache(maxsize=1)
def spec() -> Any:
    """The compiled asn1tools OER specification of the security module set."""
    return SECURITY.spec


def encode(type_name: str, value: Any) -> bytes:
    return SECURITY.encode(type_name, value)


def decode(type_name: str, data: bytes) -> Any:
    """Decode a whole value; trailing bytes are an error."""
    return SECURITY.decode(type_name, data)


def decode_prefix(type_name: str, data: bytes, offset: int = 0) -> tuple[Any, int]:
    """Decode one ``type_name`` starting at ``offset``; returns (value, end offset)."""
    return SECURITY.decode_prefix(type_name, data, offset)


length_prefix = oer.length_prefix  # COER length determinant


def read_length(data: bytes, offset: int) -> tuple[int, int]:
    """COER length determinant at ``offset`` -> (length, offset after it)."""
    try:
        return oer.read_length(data, offset)
    except oer.LengthError as e:
        raise CoerError("truncated length" if e.truncated else "bad length determinant") from None


def psid_bytes(psid: int) -> bytes:
    """COER of Psid (INTEGER 0..MAX): length-prefixed minimal unsigned big-endian."""
    body = psid.to_bytes(max(1, (psid.bit_length() + 7) // 8), "big")
    return length_prefix(len(body)) + body
