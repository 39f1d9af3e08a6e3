"""The facilities codec: the one narrow interface through which rsu encodes and decodes IS messages.

Layer: facilities PDUs only (ItsPduHeader + message body, UPER, unsigned). Nothing outside
this module touches asn1tools for IS messages.

UPER goes through the generated codec (``rsu/codec/generated/uper.py``, written by
``python -m rsu.codec.gen`` and checked against asn1tools and pycrate by
tests/test_codec_generated.py) when it was generated from the ASN.1 modules in use; asn1tools
remains the reference and the fallback: for ``RSU_UPER=asn1tools`` (or ``uper="asn1tools"``),
for modules the generated code was not made from, and for any value or input the generated
code does not take (it then gives exactly the result or the error asn1tools gives). The generated
decoder also refuses (``OutOfSchema``) every value validation would refuse, so a PDU it decodes
needs no separate value check; one it refuses is decoded again by asn1tools and validated, for
the error naming the field.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rsu import catalog
from rsu.catalog import MessageKind
from rsu.codec import values as V
from rsu.codec.asn1files import compile_set
from rsu.codec.errors import CodecError, DecodeError, InvalidValueError, UnknownMessageError
from rsu.codec.schema import Node, Schema
from rsu.codec.uper_runtime import source_digest

UPER_BACKENDS = ("generated", "asn1tools")

# the generated UPER backend (rsu.codec.generated_uper): Python value form in and out, per kind name
Encoders = dict[str, Callable[[Any], bytes]]
Decoders = dict[str, Callable[[bytes], tuple[Any, int]]]

HEADER_BYTES = 6  # ItsPduHeader in UPER: protocolVersion (8 bits), messageID (8), stationID (32)


@dataclass(frozen=True)
class ItsPduHeader:
    protocol_version: int
    message_id: int
    station_id: int


@dataclass(frozen=True)
class DecodedPdu:
    """A decoded facilities PDU: its kind and its whole value (header + body, Python value form)."""

    kind: MessageKind
    value: dict[str, Any]

    @property
    def header(self) -> ItsPduHeader:
        h = self.value["header"]
        return ItsPduHeader(h["protocolVersion"], h["messageID"], h["stationID"])

    @property
    def body(self) -> Any:
        return self.value[self.kind.body]


def peek_header(data: bytes) -> ItsPduHeader:
    """Read the ItsPduHeader without decoding the body (it is byte-aligned at the start of every PDU)."""
    if len(data) < HEADER_BYTES:
        raise DecodeError(f"truncated ItsPduHeader: {len(data)} of {HEADER_BYTES} bytes")
    return ItsPduHeader(data[0], data[1], int.from_bytes(data[2:6], "big"))


class FacilitiesCodec:
    """UPER encode/decode and JER conversion of the six TS 103 301 PDUs."""

    def __init__(self, uper: str | None = None) -> None:
        """``uper``: "generated" (the default) or "asn1tools"; ``$RSU_UPER`` sets the default."""
        compiled = self._compiled = compile_set("is", "uper")
        self.schema = Schema(compiled)
        self._jer = V.JerReader(self.schema)
        self._check = V.ValueCheck(self.schema)
        self._regional = V.RegionalTransform(self.schema, self._encode_open, self._decode_open)
        self._nodes = {kind.name: self.schema.pdu(kind.pdu) for kind in catalog.MESSAGES}
        self.uper, self._gen_encode, self._gen_decode = _uper_backend(
            uper or os.environ.get("RSU_UPER") or "generated", compiled.sources
        )

    @property
    def _spec(self) -> Any:
        """asn1tools' compiled specification: the reference and the fallback, loaded (with asn1tools) on
        first use; the generated codec does not need it."""
        return self._compiled.spec

    # helpers for the regional transform (typed value of a named type <-> its UPER bytes)
    def _encode_open(self, type_name: str, value: Any) -> bytes:
        data: bytes = self._spec.encode(type_name, value)
        return data

    def _decode_open(self, type_name: str, data: bytes) -> Any:
        return self._spec.decode(type_name, data)

    def node(self, kind: MessageKind) -> Node:
        return self._nodes[kind.name]

    # --- values in, bytes out ---------------------------------------------------------------
    def _kind_for(self, value: Any, kind: MessageKind | None) -> MessageKind:
        if not isinstance(value, dict):
            raise InvalidValueError("", f"expected a PDU object with header and body, found {type(value).__name__}")
        header = value.get("header")
        if not isinstance(header, dict):
            raise InvalidValueError("header", "missing (every PDU starts with an ItsPduHeader)")
        mid, pv = header.get("messageID"), header.get("protocolVersion")
        if kind is None:
            kind = catalog.BY_MESSAGE_ID.get(mid) if isinstance(mid, int) else None
            if kind is None:
                raise InvalidValueError(
                    "header.messageID", f"{mid!r} is not an IS message (expected one of: {_known_ids()})"
                )
        elif mid != kind.message_id:
            raise InvalidValueError("header.messageID", f"{mid!r} does not match {kind.pdu} ({kind.message_id})")
        if pv != kind.protocol_version:
            raise InvalidValueError(
                "header.protocolVersion",
                f"{pv!r} is not the version this build encodes for {kind.pdu} ({kind.protocol_version})",
            )
        return kind

    def encode(self, value: dict[str, Any], kind: MessageKind | None = None, *, validate: bool = True) -> bytes:
        """Encode a whole PDU (Python value form) to UPER.

        ``kind`` defaults to the one named by ``header.messageID``. With ``validate`` (the default;
        use it at every edge) the value is checked first and :class:`InvalidValueError` names the
        field path. Encoding errors are always :class:`CodecError`.
        """
        kind = self._kind_for(value, kind)
        node = self._nodes[kind.name]
        if validate:
            self._validate(node, value)
        fast = self._gen_encode.get(kind.name)
        if fast is not None:
            try:
                return fast(value)
            except Exception:  # noqa: BLE001 - asn1tools below gives today's bytes or error for it
                pass
        try:
            packed = self._regional.pack(node, value)
            data: bytes = self._spec.encode(kind.pdu, packed)
            return data
        except CodecError:
            raise
        except Exception as e:  # asn1tools raises assorted exceptions on bad values
            raise InvalidValueError("", f"cannot encode {kind.pdu}: {e}") from e

    # --- bytes in, values out ---------------------------------------------------------------
    def decode(self, data: bytes, *, validate: bool = True) -> DecodedPdu:
        """Decode a whole PDU, dispatching on ItsPduHeader messageID and protocolVersion.

        Raises :class:`UnknownMessageError` for a message or version this build does not decode,
        and :class:`DecodeError` for truncated, malformed or over-long input, for values outside
        a constraint, and for extension values this build's schema does not know; never anything
        else. ``validate=False`` skips the value check (only for bytes we encoded ourselves).
        """
        data = bytes(data)
        if len(data) < HEADER_BYTES:
            peek_header(data)  # raises: truncated
        version, message_id = data[0], data[1]  # ItsPduHeader (see peek_header)
        kind = catalog.BY_MESSAGE_ID.get(message_id)
        if kind is None:
            raise UnknownMessageError(
                f"unknown messageID {message_id} (this build decodes: {_known_ids()})", message_id, version
            )
        if version not in kind.accepted_versions:
            accepted = ", ".join(str(v) for v in sorted(kind.accepted_versions))
            raise UnknownMessageError(
                f"{kind.pdu} protocolVersion {version} is not supported (this build decodes {accepted})",
                message_id,
                version,
            )
        fast = self._gen_decode.get(kind.name)
        value: Any = None
        used: int | None = None
        if fast is not None:
            try:
                # regional extensions come out typed already, and the value is one validation accepts:
                # the generated decoder raises OutOfSchema for any value it would refuse
                value, used = fast(data)
            except Exception:  # noqa: BLE001 - asn1tools below names the reason (or takes what we leave to it)
                value = used = None
            else:
                validate = False
        if used is None:
            value, used = self._decode_asn1tools(kind, data)
        elif used < len(data):
            raise DecodeError(f"{len(data) - used} trailing bytes after a {used}-byte {kind.pdu}")
        if validate:
            # PER leaves room for values outside a constraint (a 20-bit field for 0..527040), and
            # asn1tools gives None for extensions it does not know: neither may reach an application.
            try:
                self._validate(self._nodes[kind.name], value)
            except InvalidValueError as e:
                err = DecodeError(f"{kind.pdu} holds a value outside its schema: {e}")
                err.where = e.path
                raise err from None
        return DecodedPdu(kind, value)

    def _decode_asn1tools(self, kind: MessageKind, data: bytes) -> tuple[Any, int]:
        try:
            value, used = self._decode_counting(kind.pdu, data)
        except Exception as e:  # asn1tools.DecodeError, IndexError, ValueError, ... : all mean malformed
            raise DecodeError(f"malformed {kind.pdu}: {_describe(e)}") from e
        if used is not None and used < len(data):
            raise DecodeError(f"{len(data) - used} trailing bytes after a {used}-byte {kind.pdu}")
        try:
            value = self._regional.unpack(self._nodes[kind.name], value)
        except Exception as e:
            raise DecodeError(f"malformed regional extension in {kind.pdu}: {_describe(e)}") from e
        return value, len(data) if used is None else used

    def _decode_counting(self, type_name: str, data: bytes) -> tuple[Any, int | None]:
        """Decode and say how many bytes the encoding used (asn1tools' UPER has no decode_with_length).

        Uses asn1tools' UPER decoder object directly to read its bit position; if a future
        asn1tools moves those internals, we fall back to a plain decode without the count.
        """
        compiled = self._spec.types[type_name]
        inner = getattr(compiled, "_type", None)
        try:  # asn1tools' UPER bit reader, to count the bits a decode consumed
            from asn1tools.codecs.uper import Decoder
        except ImportError:  # pragma: no cover
            inner = None
        if inner is None:
            return self._spec.decode(type_name, data), None
        decoder = Decoder(bytearray(data))
        value = inner.decode(decoder)
        return value, (decoder.number_of_read_bits() + 7) // 8

    # --- JER ---------------------------------------------------------------------------------
    def to_jer(self, kind: MessageKind, value: dict[str, Any]) -> dict[str, Any]:
        """Python value -> JER JSON (X.697) of the whole PDU."""
        jer: dict[str, Any] = V.to_jer(self.schema, self._nodes[kind.name], value)
        return jer

    def from_jer(self, obj: Any, kind: MessageKind | None = None) -> tuple[MessageKind, dict[str, Any]]:
        """JER JSON of a whole PDU -> (kind, Python value), validated; errors name the field path."""
        if kind is None:
            header = obj.get("header") if isinstance(obj, dict) else None
            mid = header.get("messageID") if isinstance(header, dict) else None
            kind = catalog.BY_MESSAGE_ID.get(mid) if isinstance(mid, int) else None
            if kind is None:
                raise InvalidValueError(
                    "header.messageID", f"{mid!r} is not an IS message (expected one of: {_known_ids()})"
                )
        value = self._jer.read(self._nodes[kind.name], obj)
        self._kind_for(value, kind)
        return kind, value

    def validate(self, kind: MessageKind, value: dict[str, Any]) -> None:
        self._validate(self._nodes[kind.name], value)

    def _validate(self, node: Node, value: Any) -> None:
        """Raise InvalidValueError (naming the field) unless ``value`` fits ``node``: the compiled check
        answers for a valid value; the walker (the reference) decides, and words the error, otherwise."""
        if not self._check.ok(node, value):
            V.validate(self.schema, node, value)


def _uper_backend(name: str, sources: dict[str, str]) -> tuple[str, Encoders, Decoders]:
    """(backend in use, generated encoders by kind name, generated decoders by kind name)."""
    if name not in UPER_BACKENDS:
        raise ValueError(f"unknown UPER backend {name!r} (expected one of: {', '.join(UPER_BACKENDS)})")
    if name == "asn1tools":
        return "asn1tools", {}, {}
    try:
        from rsu.codec.generated import uper as gen
    except ImportError:  # pragma: no cover - a broken install; asn1tools still works
        return "asn1tools", {}, {}
    if source_digest(sources) != gen.SOURCE_DIGEST:  # other modules ($RSU_ASN1_DIR): not generated from them
        return "asn1tools", {}, {}
    return "generated", gen.ENCODERS, gen.DECODERS


def _known_ids() -> str:
    return ", ".join(f"{m.name} {m.message_id}" for m in catalog.MESSAGES)


def _describe(e: Exception) -> str:
    text = str(e) or type(e).__name__
    return text if len(text) < 300 else text[:297] + "..."


_codec: FacilitiesCodec | None = None
_codec_lock = threading.Lock()


def get_codec() -> FacilitiesCodec:
    """The process-wide codec (compiled once, on first use)."""
    global _codec
    with _codec_lock:
        if _codec is None:
            _codec = FacilitiesCodec()
        return _codec
