"""Communication test purposes checked on the wire: the secured GeoNetworking packet the real GN layer
builds for what the services send (BTP-B, destination port, GeoBroadcast header type and area)."""

from __future__ import annotations

import pytest

from rsu import catalog
from rsu.security.request import SignRequest
from rsu.transports import gn
from rsu.transports.config import GnUdpConfig
from rsu.transports.gn_core import GnCore
from services.secured import secured  # noqa: F401
from services.support import example, new_ivim

assert secured  # the fixture, imported for this module

# TP -> (service, message, area centre (lat, lon) rounded to 5 decimals)
CASES = {
    "TP_IS_TLM_GEN_COMM_BV_03": ("tlm", "spatem", (44.83759, -0.57943)),  # the intersection's reference point
    "TP_IS_RLT_GEN_COM_BV_04": ("rlt", "mapem", (44.83759, -0.57943)),
    "TP_IS_IVI_GEN_COM_BV_02": ("ivi", "ivim", (44.83765, -0.5769)),  # the location container's reference
}


@pytest.mark.parametrize("tp", list(CASES))
def test_secured_gn_packet_on_the_wire(tp, secured, clock):
    """The packet is secured, a GeoBroadcast (HT 4, circle around the message's reference position) with next
    header BTP-B and the message's destination port (SPATEM 2004, MAPEM 2003, IVIM 2006); the signature covers
    the GN headers and the PDU and a neighbour's verifier accepts it."""
    service, message, centre = CASES[tp]
    kind = catalog.by_name(message)
    rsu = secured({"spatem": None}, {"mapem": None}, {"ivim": None})
    rsu.layer.trigger("rlt", {"payload": example("mapem")})
    if service == "tlm":
        rsu.layer.due()
        rsu.layer.trigger("tlm", {"payload": example("spatem")})
    if service == "ivi":
        rsu.layer.trigger("ivi", {"payload": new_ivim()})
    [tx] = [t for t in rsu.layer.due() if t.service == service]
    cfg = GnUdpConfig(latitude=44.837592, longitude=-0.579431, secured=True)
    cfg.validate()

    def sign(inner: bytes, offset: int) -> bytes:  # as the send pipeline's GN signer: CH | EH | BTP-B | PDU
        return rsu.security.sign(SignRequest(tx.requirement, inner, offset))

    raw = GnCore(cfg, clock, mac=bytes.fromhex("020000000a01")).packet(tx.pdu, tx.params, sign)
    pkt = gn.parse_packet(raw)
    assert pkt.is_secured and pkt.common.next_header == 2  # BTP-B
    assert pkt.header_type is gn.HeaderType.GBC_CIRCLE and pkt.header_type >> 4 == 4
    assert pkt.btp_port == kind.btp_port and pkt.payload == tx.pdu
    area = pkt.extended.area
    assert (round(area.latitude, 5), round(area.longitude, 5)) == centre
    res = rsu.receiver.verify(pkt.secured, kind, payload_offset=pkt.payload_offset)
    assert res.ok, res.detail
    assert res.psid == kind.its_aid and res.payload[pkt.payload_offset :] == tx.pdu
