"""Orange its-client "v2" JSON messages <-> facilities PDUs, sans-I/O.

Layer: takes/gives the JER form (X.697 JSON) of a facilities PDU (:meth:`rsu.codec.facilities.Codec.to_jer`
/ ``from_jer``) and the JSON object its-client based applications publish on MQTT::

    {"message_type": "spatem", "origin": "self", "version": "2.0.0",
     "source_uuid": "rsu_3120101", "timestamp": 1780000000000,      # ms since 1970, when it was made
     "message": {"protocol_version": 2, "station_id": 3120101, ...the message body...}}

Facts from its-client's published JSON schemas (schema/<type>/<type>_schema_<version>.json):
``origin`` is one of self, global_application, mec_application, on_board_application and is part of
the SPATEM and MAPEM formats (2.0.0) but not of SREM/SSEM (2.0.1); the ItsPduHeader is flattened into
``protocol_version`` and ``station_id`` (the message type says the messageID); the body's fields are
the ASN.1 names in snake_case (``state-time-speed`` -> ``state_time_speed``, ``requestID`` ->
``request_id``, ``timeStamp`` -> ``timestamp``, ``lat``/``long`` -> ``latitude``/``longitude``);
enumerations are their integer index; bit strings are strings of '0'/'1' characters; a requestor's
VehicleID is the bare station id.

The mapping is generic over the ASN.1 schema (every field, every message type), following those
conventions; where one of its-client's schemas departs from them for a type (MAPEM writes some
enumerations as names and some bit strings as lists of named bits), consuming accepts that form too
and producing writes the convention. IVIM and RTCMEM have no its-client schema: they follow the same
conventions with version 2.0.0 and ``origin``. The signature does not travel in this format.
"""

from __future__ import annotations

import re
from typing import Any

from rsu import catalog
from rsu.catalog import MessageKind

ORIGINS = ("self", "global_application", "mec_application", "on_board_application")
VERSIONS = {"spatem": "2.0.0", "mapem": "2.0.0", "srem": "2.0.1", "ssem": "2.0.1", "ivim": "2.0.0", "rtcmem": "2.0.0"}
WITH_ORIGIN = frozenset({"spatem", "mapem", "ivim", "rtcmem"})
RENAMES = {
    "timeStamp": "timestamp",
    "lat": "latitude",
    "long": "longitude",
    "inBoundLane": "inbound_lane",
    "outBoundLane": "outbound_lane",
    "transmisson": "transmission",
}
BARE_CHOICE = {"VehicleID": "stationID"}  # CHOICE type -> the alternative written as its bare value


class ItsClientError(ValueError):
    """Not an its-client message rsu can take: ``path`` names the field."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path or '(message)'}: {reason}")
        self.path, self.reason = path, reason


def snake(name: str) -> str:
    if name in RENAMES:
        return RENAMES[name]
    s = name.replace("-", "_")
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", s)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    return s.lower()


def _root_bits(node) -> int | None:
    size = node.size
    return size.lo if size is not None and size.lo == size.hi else None


def _to(schema, node, v: Any) -> Any:
    k = node.kind
    if k == "SEQUENCE":
        mm = node.member_map
        return {snake(name): _to(schema, mm[name].node, item) for name, item in v.items() if name in mm}
    if k == "CHOICE":
        ((alt, item),) = v.items()
        inner = _to(schema, node.member_map[alt].node, item)
        return inner if BARE_CHOICE.get(node.name) == alt else {snake(alt): inner}
    if k == "SEQUENCE OF":
        return [_to(schema, node.element, item) for item in v]
    if k == "ENUMERATED":
        names = node.enum_root + node.enum_ext
        return names.index(v) if v in names else v
    if k == "BIT STRING":
        data, n = (v["value"], v["length"]) if isinstance(v, dict) else (v, _root_bits(node) or len(v) * 4)
        bits = "".join(f"{b:08b}" for b in bytes.fromhex(data))
        return bits[:n]
    if k == "REGEXT":
        typed = schema.regset_types(node.regset or "").get(v["regionId"])
        value = v["regExtValue"]
        if typed is not None and not isinstance(value, str):  # a known region's typed value (else: hex)
            value = _to(schema, typed, value)
        return {"region_id": v["regionId"], "reg_ext_value": value}
    return v


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _from(schema, node, obj: Any, path: str) -> Any:
    k = node.kind
    if k == "SEQUENCE":
        if not isinstance(obj, dict):
            raise ItsClientError(path, f"expected an object ({node.label})")
        names = {snake(m.name): m for m in node.members}
        out = {}
        for key, item in obj.items():
            m = names.get(key)
            if m is None:
                raise ItsClientError(_join(path, key), f"unknown field of {node.label}")
            out[m.name] = _from(schema, m.node, item, _join(path, key))
        return out
    if k == "CHOICE":
        bare = BARE_CHOICE.get(node.name)
        if bare is not None and not isinstance(obj, dict):
            return {bare: _from(schema, node.member_map[bare].node, obj, path)}
        if not isinstance(obj, dict) or len(obj) != 1:
            raise ItsClientError(path, f"expected an object with one alternative of {node.label}")
        ((key, item),) = obj.items()
        alts = {snake(m.name): m for m in node.members}
        if key not in alts:
            raise ItsClientError(_join(path, key), f"not an alternative of {node.label}")
        return {alts[key].name: _from(schema, alts[key].node, item, _join(path, key))}
    if k == "SEQUENCE OF":
        if not isinstance(obj, list):
            raise ItsClientError(path, "expected a list")
        return [_from(schema, node.element, item, f"{path}[{i}]") for i, item in enumerate(obj)]
    if k == "ENUMERATED":
        names = node.enum_root + node.enum_ext
        if isinstance(obj, int) and not isinstance(obj, bool):
            if not 0 <= obj < len(names):
                raise ItsClientError(path, f"{obj} is not an index of {node.label} (0..{len(names) - 1})")
            return names[obj]
        return obj  # a name (MAPEM's form); the codec checks it
    if k == "BIT STRING":
        if isinstance(obj, list):  # MAPEM's form: the named bits that are set
            n = _root_bits(node) or (max(node.named_bits.values(), default=-1) + 1)
            bits = ["0"] * n
            for name in obj:
                if name not in node.named_bits:
                    raise ItsClientError(path, f"{name!r} is not a named bit of {node.label}")
                bits[node.named_bits[name]] = "1"
            obj = "".join(bits)
        if not isinstance(obj, str) or not re.fullmatch(r"[01]*", obj):
            raise ItsClientError(path, "expected a string of 0 and 1 characters")
        padded = obj + "0" * (-len(obj) % 8)
        hexed = bytes(int(padded[i : i + 8], 2) for i in range(0, len(padded), 8)).hex()
        return hexed if len(obj) == _root_bits(node) else {"value": hexed, "length": len(obj)}
    if k == "REGEXT":
        if not isinstance(obj, dict) or "region_id" not in obj or "reg_ext_value" not in obj:
            raise ItsClientError(path, "expected {region_id, reg_ext_value}")
        typed = schema.regset_types(node.regset or "").get(obj["region_id"])
        value = obj["reg_ext_value"]
        if typed is not None and not isinstance(value, str):
            value = _from(schema, typed, value, _join(path, "reg_ext_value"))
        return {"regionId": obj["region_id"], "regExtValue": value}
    return obj


def to_its_client(codec, kind: MessageKind, jer: dict, *, source: str, timestamp_ms: int, origin: str = "self") -> dict:
    """The its-client object of the PDU whose JER form is ``jer``."""
    pdu = codec.node(kind)
    header, body = pdu.members[0], pdu.members[1]
    message = {
        "protocol_version": jer[header.name]["protocolVersion"],
        "station_id": jer[header.name]["stationID"],
        **_to(codec.schema, body.node, jer[body.name]),
    }
    out: dict[str, Any] = {"message_type": kind.name}
    if kind.name in WITH_ORIGIN:
        out["origin"] = origin
    out.update(version=VERSIONS[kind.name], source_uuid=source, timestamp=int(timestamp_ms), message=message)
    return out


def from_its_client(codec, obj: Any) -> tuple[MessageKind, dict, dict]:
    """(kind, JER form of the PDU, envelope fields) of an its-client object. Raises :class:`ItsClientError`."""
    if not isinstance(obj, dict):
        raise ItsClientError("", "expected a JSON object")
    mtype = obj.get("message_type")
    kind = catalog.BY_NAME.get(mtype) if isinstance(mtype, str) else None
    if kind is None:
        raise ItsClientError("message_type", f"{mtype!r} is not one of {', '.join(VERSIONS)}")
    for key in ("source_uuid", "version"):
        if not isinstance(obj.get(key), str):
            raise ItsClientError(key, "required string")
    ts = obj.get("timestamp")
    if not isinstance(ts, int) or isinstance(ts, bool):
        raise ItsClientError("timestamp", "required integer (ms since 1970)")
    if "origin" in obj and obj["origin"] not in ORIGINS:
        raise ItsClientError("origin", f"{obj['origin']!r} is not one of {', '.join(ORIGINS)}")
    message = obj.get("message")
    if not isinstance(message, dict):
        raise ItsClientError("message", "required object")
    message = dict(message)
    pdu = codec.node(kind)
    header = {
        "protocolVersion": message.pop("protocol_version", kind.protocol_version),
        "messageID": kind.message_id,
        "stationID": message.pop("station_id", None),
    }
    if not isinstance(header["stationID"], int):
        raise ItsClientError("message.station_id", "required integer")
    body = pdu.members[1]
    jer = {pdu.members[0].name: header, body.name: _from(codec.schema, body.node, message, "message")}
    envelope = {k: obj[k] for k in ("origin", "version", "source_uuid", "timestamp") if k in obj}
    return kind, jer, envelope


# ---------------------------------------------------------------------------- MQTT payloads


def _codec():
    from rsu.codec.facilities import get_codec

    return get_codec()


def encode_payload(data: bytes, kind: MessageKind, source: str, now: float) -> bytes:
    """MQTT payload in its-client form for ``data`` (signed Ieee1609Dot2Data, or the bare UPER PDU when
    security is off): the PDU inside, decoded. Raises ValueError when it is neither."""
    import json

    from rsu.transports import envelope

    pdu = envelope.signed_payload(data) if envelope.is_ieee1609dot2(data) else bytes(data)
    from rsu.codec.errors import CodecError

    codec = _codec()
    try:
        decoded = codec.decode(pdu)
    except CodecError as e:
        raise ValueError(f"the PDU does not decode: {e}") from None
    if decoded.kind is not kind:
        raise ValueError(f"the PDU is a {decoded.kind.pdu}, not a {kind.pdu}")
    obj = to_its_client(
        codec, kind, codec.to_jer(kind, decoded.value), source=source, timestamp_ms=int(round(now * 1000))
    )
    return json.dumps(obj, separators=(",", ":")).encode()


def decode_payload(payload: bytes) -> tuple[MessageKind, bytes, dict]:
    """(kind, UPER PDU, envelope fields) of an its-client MQTT payload. Raises :class:`ItsClientError`."""
    import json

    try:
        obj = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as e:
        raise ItsClientError("", f"not JSON: {e}") from None
    from rsu.codec.errors import CodecError

    codec = _codec()
    kind, jer, env = from_its_client(codec, obj)
    try:
        _, value = codec.from_jer(jer, kind)
        return kind, codec.encode(value, kind), env
    except CodecError as e:  # the codec's errors name the ASN.1 field path
        raise ItsClientError("message", str(e)) from None
