"""Layer-by-layer dissection of a byte string: the one dissector behind ``rsu decode`` and ``rsu verify``.

Layer: takes any bytes we may meet (a pcap/pcapng file, an Ethernet frame, a GN packet, IEEE 1609.2
data, a bare facilities PDU) and gives a list of :class:`Layer`, outermost first, each with its
JSON-able fields. Nothing is verified here (``rsu verify`` verifies the ``secured`` layer this finds).

:data:`LAYERS` is the table: one function per layer, in auto-detection order. A function looks at
bytes and returns ``None`` (not my layer) or a :class:`Layer` with its fields and the payload it peeled
off for the next layer (and which layers may take it); it raises :class:`LayerError` when the bytes
are its layer but malformed. The layers, and what each hands on:

* ``pcap``: a capture file; no payload, each record's dissection in ``Layer.frames`` (a ``record``
  pseudo-layer with index, time and length first). A record that does not dissect gets an
  ``error`` layer instead of failing the whole file.
* ``ethernet``: Ethernet II with ethertype 0x8947; hands the GN packet to ``geonetworking``.
* ``geonetworking``: a GN packet. Unsecured (basic NH = common header): basic, common and
  extended header fields and BTP-B ports; hands the BTP payload to ``secured``/``facilities``.
  Secured (NH = secured packet): the basic header; hands the Ieee1609Dot2Data to ``secured``,
  whose unsecuredData starts with a common header: this layer also recognises that form
  (``"part": "secured payload"``) and hands its BTP payload to ``facilities``. A BTP port of no
  message type in :mod:`rsu.catalog` (a CAM on 2001, a DENM on 2002) ends the dissection here,
  with the BTP payload shown as hex.
* ``secured``: IEEE 1609.2 / TS 103 097 data (COER): the envelope (protocol version, content type,
  hashId), the header info, the signer (digest, or a certificate summary with its HashedId8) and
  the signature type; the unsecuredData goes on to ``facilities`` (or, in a secured GN packet, to
  ``geonetworking``). Other inner bytes are shown as hex and the dissection stops.
* ``facilities``: a facilities PDU (a known messageID); the fallback, so unknown input gets the
  codec's own explanation.

:func:`signed_part` gives ``rsu verify`` what it needs from one dissected frame (the secured bytes,
the message type the BTP port names, where the PDU starts in a signed GN packet), from the layers
as peeled, without parsing anything again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rsu import catalog
from rsu import clock as clockmod
from rsu.catalog import MessageKind
from rsu.transports import ethernet as eth
from rsu.transports import gn as g
from rsu.transports import pcap

MAX_DEPTH = 8  # no real stack nests deeper (pcap > eth > GN > secured > GN part > facilities)
MAX_RECORDS = 10_000  # records of a capture shown


class LayerError(Exception):
    """The bytes belong to a layer but do not parse; the message says which layer and why."""


@dataclass
class Layer:
    name: str  # e.g. "facilities", "secured", "geonetworking", "ethernet", "pcap"
    fields: dict[str, Any]  # JSON-able description of this layer
    payload: bytes | None = None  # what the next layer dissects; None for the innermost layer
    next_layers: tuple[str, ...] | None = None  # layers to try on the payload (None: auto)
    frames: list[list[Layer]] = field(default_factory=list)  # containers (pcap): dissected records
    raw: bytes = field(default=b"", repr=False)  # the bytes this layer was dissected from (set by dissect)


Dissector = Callable[[bytes], "Layer | None"]


def dissect(data: bytes, candidates: tuple[str, ...] | None = None, depth: int = 0) -> list[Layer]:
    """Dissect ``data`` into layers, outermost first. Raises LayerError if nothing fits."""
    if depth > MAX_DEPTH:
        raise LayerError("layers nested too deeply")
    for name in candidates or tuple(LAYERS):
        layer = LAYERS[name](data)
        if layer is None:
            continue
        layer.raw = data
        layers = [layer]
        if layer.payload is not None:
            layers += dissect(layer.payload, layer.next_layers, depth + 1)
        return layers
    raise LayerError(f"no known layer recognises these {len(data)} bytes (starting {data[:8].hex()})")


def to_json(layers: list[Layer]) -> list[dict[str, Any]]:
    out = []
    for layer in layers:
        item = {"layer": layer.name, **layer.fields}
        if layer.frames:
            item["frames"] = [to_json(frame) for frame in layer.frames]
        out.append(item)
    return out


@dataclass(frozen=True)
class SignedPart:
    """What verifying one dissected frame needs: the 1609.2 bytes, the message type its BTP port names
    (None: no port, or one of no message type of ours), and where the facilities PDU starts in the
    unsecuredData (after the signed GN common/extended headers and BTP of a secured GN packet; else 0)."""

    secured: bytes
    expected: MessageKind | None
    payload_offset: int


def signed_part(layers: list[Layer]) -> SignedPart | None:
    """The first ``secured`` layer of one frame (None when the frame carries no 1609.2 data)."""
    names = [layer.name for layer in layers]
    if "secured" not in names:
        return None
    index = names.index("secured")
    expected = None
    for layer in layers:  # the BTP port names the message type (outer GN layer, or the signed inner one)
        if layer.name == "geonetworking" and "btp" in layer.fields:
            expected = catalog.BY_BTP_PORT.get(layer.fields["btp"]["destination_port"])
    offset = 0
    inner = layers[index + 1] if index + 1 < len(layers) else None
    if inner is not None and inner.name == "geonetworking":  # signed GN common/extended headers + BTP
        btp_payload = len(inner.payload) if inner.payload is not None else inner.fields["btp"]["payload_length"]
        offset = len(inner.raw) - btp_payload
    return SignedPart(layers[index].raw, expected, offset)


# ====================================================================== pcap, Ethernet, GeoNetworking


def pcap_layer(data: bytes) -> Layer | None:
    if not pcap.is_capture(data):
        return None
    try:
        capture = pcap.read_capture(data)
    except pcap.PcapError as e:
        raise LayerError(f"pcap: {e}") from None
    frames: list[list[Layer]] = []
    for i, rec in enumerate(capture.records[:MAX_RECORDS]):
        when = datetime.fromtimestamp(rec.timestamp, tz=UTC).isoformat().replace("+00:00", "Z")
        head = Layer(
            "record",
            {"index": i, "time": when, "captured_length": len(rec.data), "original_length": rec.original_length},
        )
        candidates = ("ethernet",) if rec.linktype == pcap.LINKTYPE_ETHERNET else None
        try:
            frames.append([head, *dissect(rec.data, candidates)])
        except LayerError as e:
            frames.append([head, Layer("error", {"error": str(e), "hex": rec.data[:64].hex()})])
    fields: dict[str, Any] = {"format": capture.format, "link_type": capture.linktype, "records": len(capture.records)}
    if len(capture.records) > MAX_RECORDS:
        fields["shown"] = MAX_RECORDS
    return Layer("pcap", fields, None, None, frames)


def ethernet_layer(data: bytes) -> Layer | None:
    if len(data) < eth.HEADER_LEN or int.from_bytes(data[12:14], "big") != eth.ETHERTYPE_GN:
        return None
    if not g.looks_like_basic_header(data[eth.HEADER_LEN :]):
        return None
    frame = eth.parse_frame(data)
    return Layer(
        "ethernet",
        {
            "destination": eth.format_mac(frame.destination),
            "source": eth.format_mac(frame.source),
            "ethertype": f"0x{frame.ethertype:04x}",
        },
        frame.payload,
        ("geonetworking",),
    )


def gn_layer(data: bytes) -> Layer | None:
    if g.looks_like_basic_header(data):
        return _gn_packet(data)
    if g.looks_like_common_header(data):
        return _gn_secured_payload(data)
    return None


def _btp_fields(port: int, info: int) -> dict[str, Any]:
    kind = catalog.BY_BTP_PORT.get(port)
    return {"type": "B", "destination_port": port, "destination_port_info": info, "message": kind.pdu if kind else None}


def _gn_packet(data: bytes) -> Layer:
    basic = g.BasicHeader.from_bytes(data)
    fields: dict[str, Any] = {"basic_header": basic.describe()}
    if basic.version != g.GN_VERSION:
        raise LayerError(f"geonetworking: protocol version {basic.version} (this dissector reads version 1)")
    if basic.next_header == g.BASIC_NH_SECURED:
        fields["secured"] = True
        return Layer("geonetworking", fields, bytes(data[g.BASIC_LEN :]), ("secured",))
    try:
        common, ext, port, info, payload, _ = g.parse_inner(data[g.BASIC_LEN :], exact=False)
    except g.GnError as e:
        raise LayerError(f"geonetworking: {e.detail}") from None
    fields.update(
        {
            "secured": False,
            "common_header": common.describe(),
            "extended_header": ext.describe(),
            "btp": _btp_fields(port, info),
        }
    )
    trailing = (
        len(data)
        - g.BASIC_LEN
        - g.COMMON_LEN
        - g.EXTENDED_LEN[g.HeaderType(common.header_type)]
        - common.payload_length
    )
    if trailing:
        fields["trailing_bytes"] = trailing
    return _btp_handing_on(fields, port, payload, ("secured", "facilities"))


def _gn_secured_payload(data: bytes) -> Layer:
    try:
        common, ext, port, info, payload, _ = g.parse_inner(data, exact=True)
    except g.GnError as e:
        raise LayerError(f"geonetworking (secured payload): {e.detail}") from None
    fields = {
        "part": "secured payload",
        "common_header": common.describe(),
        "extended_header": ext.describe(),
        "btp": _btp_fields(port, info),
    }
    return _btp_handing_on(fields, port, payload, ("facilities",))


def _btp_handing_on(fields: dict[str, Any], port: int, payload: bytes, next_layers: tuple[str, ...]) -> Layer:
    """BTP payload of a message type we know goes on; any other (CAM, DENM, ...) is shown as hex."""
    if port in catalog.BY_BTP_PORT:
        return Layer("geonetworking", fields, payload, next_layers)
    fields["btp"]["payload_length"] = len(payload)
    fields["btp"]["payload_hex"] = payload.hex()
    return Layer("geonetworking", fields)


# ====================================================================== IEEE 1609.2 secured data

_OPTIONAL_HEADER_FIELDS = (
    "p2pcdLearningRequest",
    "missingCrlIdentifier",
    "encryptionKey",
    "pduFunctionalType",
    "contributedExtensions",
)


def secured_layer(data: bytes) -> Layer | None:
    if len(data) < 2 or data[0] != 0x03 or data[1] not in (0x80, 0x81, 0x82, 0x83):
        return None
    from rsu.security import coer

    try:
        value = coer.decode("Ieee1609Dot2Data", data)
    except coer.CoerError as e:
        raise LayerError(f"secured (IEEE 1609.2): {e}") from None
    alt, content = value["content"]
    fields: dict[str, Any] = {"protocolVersion": value["protocolVersion"], "content": alt}
    if alt == "unsecuredData":
        return _secured_handing_on(fields, content)
    if alt != "signedData":
        fields["bytes"] = len(data)
        return Layer("secured", fields)
    tbs = content["tbsData"]
    fields["hashId"] = content["hashId"]
    fields["headerInfo"] = _header_info(tbs["headerInfo"])
    fields["signer"] = _signer(data, *content["signer"])
    fields["signature"] = content["signature"][0]
    payload = tbs["payload"].get("data")
    if payload is None or payload["content"][0] != "unsecuredData":
        fields["payload"] = "external (extDataHash)" if "extDataHash" in tbs["payload"] else "not unsecuredData"
        return Layer("secured", fields)
    return _secured_handing_on(fields, payload["content"][1])


def _header_info(h: dict[str, Any]) -> dict[str, Any]:
    header: dict[str, Any] = {"psid": h["psid"]}
    kind = catalog.BY_ITS_AID.get(h["psid"])
    if kind is not None:
        header["message"] = kind.pdu
    for name in ("generationTime", "expiryTime"):
        if name in h:
            header[name] = h[name]
            header[name + "Iso"] = clockmod.iso_utc(clockmod.time64_to_posix(h[name]))
    if "generationLocation" in h:
        header["generationLocation"] = h["generationLocation"]
    if "inlineP2pcdRequest" in h:
        header["inlineP2pcdRequest"] = [x.hex() for x in h["inlineP2pcdRequest"]]
    if "requestedCertificate" in h:
        header["requestedCertificate"] = "present"
    for name in _OPTIONAL_HEADER_FIELDS:
        if name in h:
            header[name] = "present"
    return header


def _signer(data: bytes, alt: str, value: Any) -> dict[str, Any]:
    if alt == "digest":
        return {"digest": value.hex()}
    if alt != "certificate":
        return {alt: None}
    from rsu.security import coer
    from rsu.security.certs import Certificate, CertificateError
    from rsu.security.verify import ParseError, parse_signed

    try:  # hash the bytes as received, not a re-encoding
        raw: bytes | None = parse_signed(data).signer_cert_bytes
    except ParseError:
        raw = None
    certs = []
    for cv in value:
        try:
            cert_bytes = raw if raw is not None else coer.encode("Certificate", cv)
            certs.append(Certificate.from_bytes(cert_bytes).summary())
        except (CertificateError, coer.CoerError) as e:
            certs.append({"error": str(e)})
    return {"certificate": certs}


def _looks_like_facilities(data: bytes) -> bool:
    if len(data) < 6:
        return False
    kind = catalog.BY_MESSAGE_ID.get(data[1])
    return kind is not None and data[0] in kind.accepted_versions


def _secured_handing_on(fields: dict[str, Any], inner: bytes) -> Layer:
    fields["payloadLength"] = len(inner)
    if _looks_like_facilities(inner):
        return Layer("secured", fields, payload=inner, next_layers=("facilities",))
    if g.looks_like_common_header(inner):  # a secured GN packet signs its common/extended headers and BTP-B
        return Layer("secured", fields, payload=inner, next_layers=("geonetworking", "facilities"))
    fields["payloadHex"] = inner.hex()
    fields["payloadNote"] = "not a facilities PDU (e.g. GeoNetworking common header + BTP); shown as hex"
    return Layer("secured", fields)


# ====================================================================== facilities PDU


def facilities_layer(data: bytes) -> Layer:
    """Always claims the bytes (it is the fallback): decodes them or explains why not."""
    from rsu.codec.errors import CodecError
    from rsu.codec.facilities import get_codec

    codec = get_codec()
    try:
        pdu = codec.decode(data)
        jer = codec.to_jer(pdu.kind, pdu.value)  # decode validates, so to_jer failing would be a bug
    except CodecError as e:
        raise LayerError(f"facilities PDU: {e}") from None
    return Layer("facilities", {"type": pdu.kind.pdu, "pdu": jer})


# name -> dissector; the order of the keys is the auto-detection order (outermost first, the fallback last)
LAYERS: dict[str, Dissector] = {
    "pcap": pcap_layer,
    "ethernet": ethernet_layer,
    "geonetworking": gn_layer,
    "secured": secured_layer,
    "facilities": facilities_layer,
}
