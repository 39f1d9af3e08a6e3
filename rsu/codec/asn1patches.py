"""Narrow fixes to asn1tools' UPER codec where it does not follow X.691. Applied once, on import.

* BIT STRING with an extensible size constraint (e.g. ``LaneAttributes-Vehicle ::= BIT STRING
  (SIZE(8, ...))``): asn1tools 0.169 raises NotImplementedError for a length outside the root.
  X.691 (16.6, 16.11) sends the extension bit 1 and then the length as an unconstrained length
  determinant followed by the bits — exactly asn1tools' own "unbound" path, which we call.
  pycrate encodes the same bits (checked in tests/test_codec_interop.py).

Each patch checks that the method it replaces is the one it was written for (it still raises
NotImplementedError for the extension), so a fixed asn1tools is left alone.

And one for memory, not for X.691: PER's and UPER's ``BMPString`` class each build, on import, a
dict mapping every BMP code point to itself (63,488 entries, about 11 MB of the process for the
two). :class:`BmpIdentity` answers the same lookups, length and iteration from two ranges; a
BMPString type (none in our modules) encodes and decodes exactly as before, errors included.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from asn1tools.codecs import per, uper

_PATCHED = False


def _bitstring_encode(self: Any, data: tuple[bytes, int], encoder: Any) -> Any:
    value, number_of_bits = data
    if self.has_extension_marker and not (self.minimum <= number_of_bits <= self.maximum):
        encoder.append_bit(1)
        return self.encode_unbound(value, number_of_bits, encoder)
    return _original_encode(self, data, encoder)


def _bitstring_decode(self: Any, decoder: Any) -> Any:
    if self.has_extension_marker:
        if decoder.read_bit():
            return self.decode_unbound(decoder)
        # root length: decode as if there were no marker (the bit is consumed)
        marker, self.has_extension_marker = self.has_extension_marker, False
        try:
            return _original_decode(self, decoder)
        finally:
            self.has_extension_marker = marker
    return _original_decode(self, decoder)


_original_encode = uper.BitString.encode
_original_decode = uper.BitString.decode


_SURROGATES = range(0xD800, 0xE000)  # not in asn1tools' BMP_STRING alphabet


class BmpIdentity(Mapping[int, int]):
    """``{c: c for every BMP code point but the surrogates}`` (asn1tools' BMPString map) without the dict."""

    def __getitem__(self, key: int) -> int:
        if isinstance(key, int) and 0 <= key <= 0xFFFF and key not in _SURROGATES:
            return key
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, int) and 0 <= key <= 0xFFFF and key not in _SURROGATES

    def __len__(self) -> int:
        return 0x10000 - len(_SURROGATES)

    def __iter__(self) -> Iterator[int]:
        yield from range(_SURROGATES.start)
        yield from range(_SURROGATES.stop, 0x10000)


def _compact_bmp_maps() -> None:
    """Swap PER's and UPER's BMPString code point dict for a BmpIdentity, when it is that dict."""
    identity = BmpIdentity()
    code_points = [*range(_SURROGATES.start), *range(_SURROGATES.stop, 0x10000)]
    for module in (per, uper):
        cls = module.BMPString
        table = getattr(cls, "ENCODE_DECODE_MAP", None)
        if isinstance(table, dict) and list(table) == list(table.values()) == code_points:
            cls.ENCODE_DECODE_MAP = identity
            cls.PERMITTED_ALPHABET = module.PermittedAlphabet(identity, identity)


def _raises_not_implemented(function: Any) -> bool:
    """The function's code holds asn1tools' "... is not yet implemented." message (read from its constants,
    not its source file: that took about 10 ms of every start-up)."""
    return any(isinstance(c, str) and "not yet implemented" in c for c in function.__code__.co_consts)


def apply() -> None:
    global _PATCHED
    if _PATCHED:
        return
    _PATCHED = True
    if _raises_not_implemented(_original_decode):
        uper.BitString.encode = _bitstring_encode
        uper.BitString.decode = _bitstring_decode
    _compact_bmp_maps()


apply()
