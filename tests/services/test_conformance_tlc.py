"""TLC test purposes (SREM request side TLCR_*, SSEM status side TLCS_*) with the real security layer.

Only some TLC identifiers were seen in the ETSI material; docs/conformance.md marks the ones rsu
named itself. The role TPs run once per requestor role (18 SSP bits): a certificate that grants
exactly one role lets exactly that role's requests through, on the sending and the receiving side.
"""

from __future__ import annotations

import pytest

from rsu import catalog
from rsu.security import ssp
from rsu.security.verify import Reason
from rsu.services.errors import ServiceError
from services.secured import make_at, peer_signed, secured, signed_header, signer_certificate  # noqa: F401
from services.support import by_service, decoded, example

assert secured  # the fixture, imported for this module

ROLES = [p.name[len("role.") :] for p in ssp.layout(catalog.SREM).permissions if p.name.startswith("role.")]


def role_ssp(*roles: str, base: bool = True) -> bytes:
    """SREM SSP (version 2) granting the base SREM permission and the given roles."""
    lay = ssp.layout(catalog.SREM)
    out = bytearray(lay.length)
    out[0] = lay.version
    for name in (["signalRequest"] if base else []) + [f"role.{r}" for r in roles]:
        p = lay.permission(name)
        out[p.octet] |= p.mask
    return bytes(out)


def srem(role: str | None = "publicTransport", requests: bool = True) -> dict:
    v = example("srem")
    if role is None:
        del v["srm"]["requestor"]["type"]
    else:
        v["srm"]["requestor"]["type"]["role"] = role
    if not requests:
        del v["srm"]["requests"]
    return v


def srem_pdu(codec, **kw) -> bytes:
    return codec.encode(codec.from_jer(srem(**kw), catalog.SREM)[1])


def test_roles_cover_every_ssp_role_bit():
    assert len(ROLES) == 18 and ROLES[0] == "publicTransport" and len(set(ROLES)) == 18
    assert role_ssp() == bytes.fromhex("02800000") and role_ssp("stopNgo") == bytes.fromhex("02800020")


def test_TP_IS_TLCR_GEN_EVGN_BV_01(secured, codec):
    """An application trigger produces a new SREM at once, with the application's requests and requestor."""
    rsu = secured({"srem": None})
    answer = rsu.layer.trigger("tlc", {"payload": srem()})
    assert answer["id"] == "srem-station-2104711"
    [(tx, data)] = rsu.sent("tlc")
    assert tx.fresh and tx.kind is catalog.SREM
    srm = decoded(codec, tx)["srm"]
    assert srm["requestor"]["id"] == ("stationID", 2104711) and srm["requestor"]["type"]["role"] == "publicTransport"
    assert [r["request"]["requestID"] for r in srm["requests"]] == [5]
    assert rsu.verify(data, catalog.SREM).ok


def test_TP_IS_TLCR_GEN_SSP_BV_role(secured, codec):
    """For each requestor role: an AT granting that role (only) signs an SREM requesting priority for it."""
    for role in ROLES:
        rsu = secured({"srem": role_ssp(role)})
        rsu.layer.trigger("tlc", {"payload": srem(role)})
        [(tx, data)] = rsu.sent("tlc")
        assert decoded(codec, tx)["srm"]["requestor"]["type"]["role"] == role
        assert signer_certificate(data).app_permissions[140] == role_ssp(role), role
        assert rsu.verify(data, catalog.SREM).ok, role


def test_TP_IS_TLCR_GEN_SSP_BO_role(secured):
    """For each requestor role: with an AT granting every role but that one, an SREM requesting priority for
    it is refused before anything is sent (the bit of that role, and no other, guards it)."""
    for i, role in enumerate(ROLES):
        rsu = secured({"srem": role_ssp(*(ROLES[:i] + ROLES[i + 1 :]))})
        with pytest.raises(ServiceError) as e:
            rsu.layer.trigger("tlc", {"payload": srem(role)})
        assert e.value.code == "ssp_not_permitted" and f"role.{role}" in e.value.reason, role
        assert rsu.sent() == [] and rsu.layer.list() == [], role


def test_TP_IS_TLCR_RCV_SSP_BV_role(secured, codec, clock):
    """For each requestor role: an SREM from a requestor whose AT grants that role is accepted; its request
    becomes pending (what the application decides on)."""
    rsu = secured({"ssem": None})
    for role in ROLES:
        data = peer_signed(clock, make_at(clock, {"srem": role_ssp(role)}), "srem", srem_pdu(codec, role=role))
        res, event = rsu.receive(data, catalog.SREM)
        assert res.ok, (role, res.detail)
        assert event["tlc"]["requestor"]["role"] == role
        assert [r["key"] for r in rsu.layer.pending_requests()] == ["station-2104711:1201:5"]


def test_TP_IS_TLCR_RCV_SSP_BO_role(secured, codec, clock):
    """For each requestor role: an SREM requesting priority for a role its signer's AT does not grant (all
    other roles granted) is skipped: no event, no pending request."""
    rsu = secured({"ssem": None})
    sub = rsu.layer.subscribe()
    for i, role in enumerate(ROLES):
        at = make_at(clock, {"srem": role_ssp(*(ROLES[:i] + ROLES[i + 1 :]))})
        res, event = rsu.receive(peer_signed(clock, at, "srem", srem_pdu(codec, role=role)), catalog.SREM)
        assert res.reason is Reason.SSP_VIOLATION and res.missing_permissions == (f"role.{role}",), role
        assert event is None
    assert len(sub) == 0 and rsu.layer.pending_requests() == []


def test_TP_IS_TLCR_RCV_SSP_BO_01(secured, codec, clock):
    """An SREM from a basicVehicle without requests is skipped when its signer has no SREM permission: an AT
    without ITS-AID 140, and an AT with ITS-AID 140 whose SSP lacks the SREM bit."""
    rsu = secured({"ssem": None})
    sub = rsu.layer.subscribe()
    pdu = srem_pdu(codec, role="basicVehicle", requests=False)
    no_aid = make_at(clock, {"spatem": None, "mapem": None})
    res, event = rsu.receive(peer_signed(clock, no_aid, "srem", pdu), catalog.SREM)
    assert res.reason is Reason.PSID_NOT_PERMITTED and event is None
    no_bit = make_at(clock, {"srem": role_ssp(*ROLES, base=False)})
    res, event = rsu.receive(peer_signed(clock, no_bit, "srem", pdu), catalog.SREM)
    assert res.reason is Reason.SSP_VIOLATION and res.missing_permissions == ("signalRequest",) and event is None
    assert len(sub) == 0
    granted = make_at(clock, {"srem": role_ssp()})  # the same SREM passes with the SREM bit
    assert rsu.receive(peer_signed(clock, granted, "srem", pdu), catalog.SREM)[1] is not None


def test_TP_IS_TLCR_RCV_SSP_BO_02(secured, codec, clock):
    """An SREM with a request and no specific role (basicVehicle) is skipped when the signer's AT does not
    allow SREM requests; the request never becomes pending."""
    rsu = secured({"ssem": None})
    pdu = srem_pdu(codec, role="basicVehicle")
    at = make_at(clock, {"srem": role_ssp(*ROLES, base=False)})
    res, event = rsu.receive(peer_signed(clock, at, "srem", pdu), catalog.SREM)
    assert res.reason is Reason.SSP_VIOLATION and "signalRequest" in res.missing_permissions and event is None
    assert rsu.layer.pending_requests() == []
    ok = make_at(clock, {"srem": role_ssp()})  # base bit only: a request without a specific role passes
    assert rsu.receive(peer_signed(clock, ok, "srem", pdu), catalog.SREM)[1] is not None
    assert [r["key"] for r in rsu.layer.pending_requests()] == ["station-2104711:1201:5"]


def test_TP_IS_TLCS_GEN_SEC_BV_01(secured, codec, clock):
    """The SSEM answering a request is signed with ITS-AID 637 by an AT whose SSP is the version octet 01."""
    rsu = secured({"srem": None}, {"ssem": None}, {"mapem": None})
    data = peer_signed(clock, make_at(clock, {"srem": role_ssp("publicTransport")}), "srem", srem_pdu(codec))
    assert rsu.receive(data, catalog.SREM)[1] is not None
    rsu.layer.trigger("tlc", {"decision": {"request": "station-2104711:1201:5", "status": "granted"}})
    [(tx, signed)] = [(t, d) for t, d in rsu.sent("tlc") if t.kind is catalog.SSEM]
    assert signed_header(signed)["psid"] == 637
    cert = signer_certificate(signed)
    assert cert.app_permissions == {637: b"\x01"}
    assert rsu.verify(signed, catalog.SSEM).ok
    assert tx.params.btp_port == 2008 and by_service([tx], "tlc")
