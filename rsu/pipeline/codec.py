"""The codec port: what the services (and the send pipeline before them) need of the facilities codec.

Layer: Python values of whole facilities PDUs <-> UPER bytes (and JER JSON at the API edge).
:class:`LazyCodec` is the daemon's implementation: it reads the ASN.1 specification at first use
(a restart puts the restored messages back on the air from their stored bytes before that) and
reports every encode's duration (``rsu_encode_seconds``) to an injected callback. Every method is
written out: no attribute forwarding.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from rsu.catalog import MessageKind

if TYPE_CHECKING:
    from rsu.codec.facilities import DecodedPdu, FacilitiesCodec
    from rsu.codec.schema import Schema

OnEncode = Callable[[MessageKind | None, float], None]
"""``on_encode(kind, seconds)``: one encode took ``seconds`` (kind None: named by the value's header)."""


class Codec(Protocol):
    """Whole facilities PDUs: Python value <-> UPER, and JER JSON for the API."""

    @property
    def schema(self) -> Schema: ...

    def encode(self, value: dict[str, Any], kind: MessageKind | None = None, *, validate: bool = True) -> bytes: ...

    def decode(self, data: bytes, *, validate: bool = True) -> DecodedPdu: ...

    def to_jer(self, kind: MessageKind, value: dict[str, Any]) -> dict[str, Any]: ...

    def from_jer(self, obj: Any, kind: MessageKind | None = None) -> tuple[MessageKind, dict[str, Any]]: ...


def _ignore(kind: MessageKind | None, seconds: float) -> None:
    return None


class LazyCodec:
    """A :class:`Codec` loaded at first use (``load``, e.g. ``rsu.codec.facilities.get_codec``), with each
    encode's duration given to ``on_encode``. ``warm()`` loads it now (the daemon calls it once the
    restored messages are on the air)."""

    def __init__(
        self,
        load: Callable[[], FacilitiesCodec],
        on_encode: OnEncode = _ignore,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._load = load
        self._codec: FacilitiesCodec | None = None
        self._on_encode = on_encode
        self._timer = timer

    @property
    def codec(self) -> FacilitiesCodec:
        if self._codec is None:
            self._codec = self._load()
        return self._codec

    def warm(self) -> None:
        self._codec = self.codec

    @property
    def schema(self) -> Schema:
        return self.codec.schema

    def encode(self, value: dict[str, Any], kind: MessageKind | None = None, *, validate: bool = True) -> bytes:
        codec = self.codec
        t0 = self._timer()
        try:
            return codec.encode(value, kind, validate=validate)
        finally:
            self._on_encode(kind, self._timer() - t0)

    def decode(self, data: bytes, *, validate: bool = True) -> DecodedPdu:
        return self.codec.decode(data, validate=validate)

    def to_jer(self, kind: MessageKind, value: dict[str, Any]) -> dict[str, Any]:
        return self.codec.to_jer(kind, value)

    def from_jer(self, obj: Any, kind: MessageKind | None = None) -> tuple[MessageKind, dict[str, Any]]:
        return self.codec.from_jer(obj, kind)
