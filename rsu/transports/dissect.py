"""Dissectors for :mod:`rsu.ops.dissect`: pcap/pcapng files, Ethernet frames, GeoNetworking packets.

Layers and what each hands on:

* ``pcap``: a capture file; no payload, each record's dissection in ``Layer.frames`` (a ``record``
  pseudo-layer with index, time and length first). A record that does not dissect gets an
  ``error`` layer instead of failing the whole file.
* ``ethernet``: Ethernet II with ethertype 0x8947; hands the GN packet to ``geonetworking``.
* ``geonetworking``: a GN packet. Unsecured (basic NH = common header): basic, common and
  extended header fields and BTP-B ports; hands the BTP payload to ``secured``/``facilities``.
  Secured (NH = secured packet): the basic header; hands the Ieee1609Dot2Data to ``secured``,
  whose unsecuredData starts with a common header: this dissector also recognises that form
  (``"part": "secured payload"``) and hands its BTP payload to ``facilities``.

A BTP port of no message type in :mod:`rsu.catalog` (a CAM on 2001, a DENM on 2002) ends the
dissection at the GN layer with the BTP payload shown as hex.
"""

from __future__ import annotations

from datetime import datetime, timezone

from rsu import catalog
from rsu.ops.dissect import Layer, LayerError
from rsu.transports import ethernet as eth
from rsu.transports import gn as g
from rsu.transports import pcap

MAX_RECORDS = 10_000


def pcap_layer(data: bytes) -> Layer | None:
    if not pcap.is_capture(data):
        return None
    from rsu.ops.dissect import dissect

    try:
        capture = pcap.read_capture(data)
    except pcap.PcapError as e:
        raise LayerError(f"pcap: {e}") from None
    frames: list[list[Layer]] = []
    for i, rec in enumerate(capture.records[:MAX_RECORDS]):
        when = datetime.fromtimestamp(rec.timestamp, tz=timezone.utc).isoformat().replace("+00:00", "Z")
        head = Layer("record", {"index": i, "time": when, "captured_length": len(rec.data),
                                "original_length": rec.original_length})
        candidates = ("ethernet",) if rec.linktype == pcap.LINKTYPE_ETHERNET else None
        try:
            frames.append([head, *dissect(rec.data, candidates)])
        except LayerError as e:
            frames.append([head, Layer("error", {"error": str(e), "hex": rec.data[:64].hex()})])
    fields = {"format": capture.format, "link_type": capture.linktype, "records": len(capture.records)}
    if len(capture.records) > MAX_RECORDS:
        fields["shown"] = MAX_RECORDS
    return Layer("pcap", fields, None, None, frames)


def ethernet_layer(data: bytes) -> Layer | None:
    if len(data) < eth.HEADER_LEN or int.from_bytes(data[12:14], "big") != eth.ETHERTYPE_GN:
        return None
    if not g.looks_like_basic_header(data[eth.HEADER_LEN:]):
        return None
    frame = eth.parse_frame(data)
    return Layer("ethernet", {"destination": eth.format_mac(frame.destination),
                              "source": eth.format_mac(frame.source),
                              "ethertype": f"0x{frame.ethertype:04x}"},
                 frame.payload, ("geonetworking",))


def _btp_fields(port: int, info: int) -> dict:
    kind = catalog.BY_BTP_PORT.get(port)
    return {"type": "B", "destination_port": port, "destination_port_info": info,
            "message": kind.pdu if kind else None}


def gn_layer(data: bytes) -> Layer | None:
    if g.looks_like_basic_header(data):
        return _gn_packet(data)
    if g.looks_like_common_header(data):
        return _gn_secured_payload(data)
    return None


def _gn_packet(data: bytes) -> Layer:
    basic = g.BasicHeader.from_bytes(data)
    fields: dict = {"basic_header": basic.describe()}
    if basic.version != g.GN_VERSION:
        raise LayerError(f"geonetworking: protocol version {basic.version} (this dissector reads version 1)")
    if basic.next_header == g.BASIC_NH_SECURED:
        fields["secured"] = True
        return Layer("geonetworking", fields, bytes(data[g.BASIC_LEN:]), ("secured",))
    try:
        common, ext, port, info, payload, _ = g.parse_inner(data[g.BASIC_LEN:], exact=False)
    except g.GnError as e:
        raise LayerError(f"geonetworking: {e.detail}") from None
    fields.update({"secured": False, "common_header": common.describe(), "extended_header": ext.describe(),
                   "btp": _btp_fields(port, info)})
    trailing = len(data) - g.BASIC_LEN - g.COMMON_LEN - g.EXTENDED_LEN[g.HeaderType(common.header_type)] \
        - common.payload_length
    if trailing:
        fields["trailing_bytes"] = trailing
    return _handing_on(fields, port, payload, ("secured", "facilities"))


def _gn_secured_payload(data: bytes) -> Layer:
    try:
        common, ext, port, info, payload, _ = g.parse_inner(data, exact=True)
    except g.GnError as e:
        raise LayerError(f"geonetworking (secured payload): {e.detail}") from None
    fields = {"part": "secured payload", "common_header": common.describe(), "extended_header": ext.describe(),
              "btp": _btp_fields(port, info)}
    return _handing_on(fields, port, payload, ("facilities",))


def _handing_on(fields: dict, port: int, payload: bytes, next_layers: tuple[str, ...]) -> Layer:
    """BTP payload of a message type we know goes on; any other (CAM, DENM, ...) is shown as hex."""
    if port in catalog.BY_BTP_PORT:
        return Layer("geonetworking", fields, payload, next_layers)
    fields["btp"]["payload_length"] = len(payload)
    fields["btp"]["payload_hex"] = payload.hex()
    return Layer("geonetworking", fields)
