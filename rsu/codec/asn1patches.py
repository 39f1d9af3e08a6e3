"""Narrow fixes to asn1tools' UPER codec where it does not follow X.691. Applied once, on import.

* BIT STRING with an extensible size constraint (e.g. ``LaneAttributes-Vehicle ::= BIT STRING
  (SIZE(8, ...))``): asn1tools 0.169 raises NotImplementedError for a length outside the root.
  X.691 (16.6, 16.11) sends the extension bit 1 and then the length as an unconstrained length
  determinant followed by the bits — exactly asn1tools' own "unbound" path, which we call.
  pycrate encodes the same bits (checked in tests/test_codec_interop.py).

Each patch checks that the method it replaces is the one it was written for (it still raises
NotImplementedError for the extension), so a fixed asn1tools is left alone.
"""

from __future__ import annotations

import inspect
from typing import Any

from asn1tools.codecs import uper

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


def apply() -> None:
    global _PATCHED
    if _PATCHED:
        return
    _PATCHED = True
    if "not yet implemented" in inspect.getsource(_original_decode):
        uper.BitString.encode = _bitstring_encode
        uper.BitString.decode = _bitstring_decode


apply()
