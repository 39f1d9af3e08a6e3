"""Layer-by-layer dissection of a byte string, for ``rsu decode`` and for diagnostics.

Each layer package contributes one *dissector*: a function that looks at bytes and
either returns ``None`` (not my layer) or a :class:`Layer` with its fields and the
payload to hand on; it raises :class:`LayerError` when the bytes are its layer but
malformed. Dissectors are named here by import path so that a layer that is not
built into this version is simply skipped.

Auto-detection order, outermost first: pcap file, Ethernet frame (ethertype 0x8947),
GeoNetworking packet, IEEE 1609.2 data (first octet 3), facilities PDU (a known
messageID). The facilities dissector is the fallback, so unknown input gets the
codec's own explanation.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

MAX_DEPTH = 8  # no real stack nests deeper (pcap > eth > GN > secured > facilities)


class LayerError(Exception):
    """The bytes belong to a layer but do not parse; the message says which layer and why."""


@dataclass
class Layer:
    name: str  # e.g. "facilities", "secured", "geonetworking", "ethernet", "pcap"
    fields: dict[str, Any]  # JSON-able description of this layer
    payload: bytes | None = None  # what the next layer dissects; None for the innermost layer
    next_layers: tuple[str, ...] | None = None  # dissectors to try on the payload (None: auto)
    frames: list[list["Layer"]] = field(default_factory=list)  # containers (pcap): dissected records
    raw: bytes = field(default=b"", repr=False)  # the bytes this layer was dissected from (set by dissect)


Dissector = Callable[[bytes], "Layer | None"]

# name -> "module:function"; order of the keys is the auto-detection order
DISSECTORS: dict[str, str] = {
    "pcap": "rsu.transports.dissect:pcap_layer",
    "ethernet": "rsu.transports.dissect:ethernet_layer",
    "geonetworking": "rsu.transports.dissect:gn_layer",
    "secured": "rsu.security.dissect:secured_layer",
    "facilities": "rsu.codec.dissect:facilities_layer",
}


def _load(name: str) -> Dissector | None:
    module_name, func = DISSECTORS[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name == module_name:
            return None
        raise
    return getattr(module, func, None)


def dissect(data: bytes, candidates: tuple[str, ...] | None = None, depth: int = 0) -> list[Layer]:
    """Dissect ``data`` into layers, outermost first. Raises LayerError if nothing fits."""
    if depth > MAX_DEPTH:
        raise LayerError("layers nested too deeply")
    names = candidates or tuple(DISSECTORS)
    for name in names:
        dissector = _load(name)
        if dissector is None:
            continue
        layer = dissector(data)
        if layer is None:
            continue
        layer.raw = data
        layers = [layer]
        if layer.payload is not None:
            layers += dissect(layer.payload, layer.next_layers, depth + 1)
        return layers
    preview = data[:8].hex()
    raise LayerError(f"no known layer recognises these {len(data)} bytes (starting {preview})")


def to_json(layers: list[Layer]) -> list[dict[str, Any]]:
    out = []
    for layer in layers:
        item = {"layer": layer.name, **layer.fields}
        if layer.frames:
            item["frames"] = [to_json(frame) for frame in layer.frames]
        out.append(item)
    return out
