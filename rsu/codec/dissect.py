"""The facilities-PDU dissector for :mod:`rsu.ops.dissect` (innermost layer)."""

from __future__ import annotations

from rsu.codec.errors import CodecError
from rsu.ops.dissect import Layer, LayerError


def facilities_layer(data: bytes) -> Layer:
    """Always claims the bytes (it is the fallback): decodes them or explains why not."""
    from rsu.codec.facilities import get_codec

    codec = get_codec()
    try:
        pdu = codec.decode(data)
    except CodecError as e:
        raise LayerError(f"facilities PDU: {e}") from None
    try:
        jer = codec.to_jer(pdu.kind, pdu.value)
    except CodecError as e:  # decode validates, so this is a bug if it happens; still no traceback
        raise LayerError(f"facilities PDU: {e}") from None
    return Layer("facilities", {"type": pdu.kind.pdu, "pdu": jer})
