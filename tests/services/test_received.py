"""IS_DataProviding at the facade: received messages fanned out with their security and transport information."""

from __future__ import annotations

from rsu import catalog
from services.support import example

SEC = {"its_aid": 137, "ssp": bytes.fromhex("01e0"), "signer": bytes.fromhex("1122334455667788"), "verification": "ok"}
TRANSPORT = {"transport": "gn-udp", "source": "a1b2c3d4e5f6", "btp_port": 2004, "hop_limit": 1}


def encoded(codec, name):
    _, value = codec.from_jer(example(name), catalog.BY_NAME[name])
    return codec.encode(value)


def test_TP_IS_TLM_RCV_MSGF_BV_01(layer, codec):
    """A received SPATEM is passed to the applications with all its fields, security and transport info."""
    sub = layer.subscribe()
    event = layer.on_received(codec.decode(encoded(codec, "spatem")), SEC, TRANSPORT)
    assert sub.drain() == [event]
    assert (event["type"], event["service"], event["message"], event["station_id"]) == (
        "received",
        "tlm",
        "spatem",
        3120101,
    )
    assert event["pdu"] == example("spatem")  # the whole PDU as JER
    assert event["security"] == {"its_aid": 137, "ssp": "01e0", "signer": "1122334455667788", "verification": "ok"}
    assert event["transport"] == TRANSPORT
    assert event["received_at"] == "2025-05-14T08:00:00Z"


def test_TP_IS_TLM_RCV_SEC_BO_01(layer, codec):
    """A SPATEM the security layer discarded (wrong ITS-AID) never reaches the applications."""
    sub = layer.subscribe()
    assert layer.on_received(encoded(codec, "spatem"), dict(SEC, verification="its_aid_mismatch"), TRANSPORT) is None
    assert len(sub) == 0


def test_TP_IS_RLT_RCV_MSGF_BV_01(layer, codec):
    """A received MAPEM is processed and delivered (all mandatory fields present in the event)."""
    event = layer.on_received(encoded(codec, "mapem"), dict(SEC, its_aid=138), TRANSPORT)
    m = event["pdu"]["map"]
    assert event["service"] == "rlt" and m["msgIssueRevision"] == 3 and m["intersections"][0]["id"] == {"id": 1201}


def test_filter_by_service_and_resume_by_last_id(layer, codec):
    only_ivi = layer.subscribe(["ivim"])
    everything = layer.subscribe()
    for name in ("spatem", "ivim", "rtcmem"):
        layer.on_received(encoded(codec, name), SEC, TRANSPORT)
    assert [e["service"] for e in only_ivi.drain()] == ["ivi"]
    events = everything.drain()
    assert [e["message"] for e in events] == ["spatem", "ivim", "rtcmem"]
    late = layer.subscribe(last_id=events[0]["id"])  # a reconnecting client gets what it missed
    assert [e["message"] for e in late.drain()] == ["ivim", "rtcmem"]


def test_subscriber_queue_is_bounded(make_layer, codec):
    layer = make_layer(rules={"subscriber_queue": 3})
    sub = layer.subscribe()
    data = encoded(codec, "srem")
    for _ in range(5):
        layer.on_received(data, dict(SEC, its_aid=140), TRANSPORT)
    assert len(sub) == 3 and sub.dropped == 2
    assert layer.stats()["received"]["dropped"] == 2


def test_waker_called_and_undecodable_counted(layer, codec):
    calls = []
    sub = layer.subscribe()
    sub.set_waker(lambda: calls.append(1))
    layer.on_received(encoded(codec, "ssem"), dict(SEC, its_aid=637), TRANSPORT)
    assert calls == [1]
    assert layer.on_received(b"\x02\x04\x00", SEC, TRANSPORT) is None
    assert layer.stats()["counts"]["rx_undecodable"] == 1


def test_ended_entries_are_announced(layer, clock):
    from rsu.clock import timestamp_its
    from services.support import new_ivim

    sub = layer.subscribe(types=["ended"])
    ident = layer.trigger("ivi", {"payload": new_ivim(validTo=timestamp_its(clock.now() + 1.5))})["id"]
    clock.advance(2)
    layer.due()
    [event] = sub.drain()
    assert (event["type"], event["service"], event["entry"], event["reason"]) == (
        "ended",
        "ivi",
        ident,
        "validTo reached",
    )


def test_unprocessable_pdu_is_counted_not_raised(layer, codec):
    """A decoded value the codec cannot render (an unknown CHOICE extension decodes to (None, None))."""
    from rsu.codec.facilities import DecodedPdu

    _, value = codec.from_jer(example("ivim"), catalog.IVIM)
    value["ivi"]["optional"][0] = (None, None)
    sub = layer.subscribe()
    assert layer.on_received(DecodedPdu(catalog.IVIM, value), SEC, TRANSPORT) is None
    assert len(sub) == 0 and layer.stats()["counts"]["rx_unprocessable"] == 1
    assert layer.on_received(encoded(codec, "ivim"), SEC, TRANSPORT)["ivi"]["collection"] == "new"
