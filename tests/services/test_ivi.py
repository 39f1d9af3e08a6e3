"""IVI service (IVIM), named after the TS 103 191-2 test purposes it meets (sender and receiver)."""

from __future__ import annotations

import pytest

from rsu import catalog
from rsu.clock import iso_utc, timestamp_its
from rsu.services.errors import ServiceError
from rsu.services.ivi import country_code, country_letters
from services.support import by_service, decoded, example, new_ivim, permission_check

SEC_OK = {"its_aid": 139, "ssp": "01", "signer": "a1b2c3d4e5f60718", "verification": "ok"}
TRANSPORT = {"transport": "gn", "source": "0a0b0c0d0e0f"}


def ivims(layer, now=None):
    return by_service(layer.due(now), "ivi")


def mandatory(codec, tx) -> dict:
    return decoded(codec, tx)["ivi"]["mandatory"]


def with_speed(v: dict, speed: int) -> dict:
    part = v["ivi"]["optional"][1]["giv"][0]
    part["roadSignCodes"][0]["code"]["iso14823"]["attributes"][0]["spe"]["speedLimitMax"] = speed
    return v


def test_TP_IS_IVI_GEN_MSGF_BV_01(layer, codec):
    """Header: protocolVersion 2 and messageID ivim (6)."""
    layer.trigger("ivi", {"payload": new_ivim()})
    [tx] = ivims(layer)
    h = decoded(codec, tx)["header"]
    assert (h["protocolVersion"], h["messageID"]) == (2, 6)


def test_TP_IS_IVI_GEN_MANC_BV_01(layer, codec):
    """The provider's country code is ISO 3166-1 in ITA2 letters (FR); the id is shown as FR57-n."""
    answer = layer.trigger("ivi", {"payload": new_ivim()})
    assert answer["id"].startswith("FR57-")
    assert answer["identification"]["serviceProviderId"] == {"countryCode": "FR", "providerIdentifier": 57}
    assert country_letters(mandatory(codec, ivims(layer)[0])["serviceProviderId"]["countryCode"]) == "FR"
    assert country_code("GB") == (bytes([0b01011100, 0b11000000]), 10)  # '0101110011'B, the ETSI PIXIT value


def test_TP_IS_IVI_GEN_EVGN_BV_01(layer):
    """An application trigger produces a new IVIM at once."""
    layer.trigger("ivi", {"payload": new_ivim()})
    [tx] = ivims(layer)
    assert tx.fresh and tx.kind is catalog.IVIM


def test_TP_IS_IVI_GEN_EVGN_BV_02(layer, codec):
    """Each new IVI gets an iviIdentificationNumber that no active IVI of the provider uses."""
    numbers = [
        layer.trigger("ivi", {"payload": new_ivim()})["identification"]["iviIdentificationNumber"] for _ in range(5)
    ]
    assert len(set(numbers)) == 5
    sent = {mandatory(codec, t)["iviIdentificationNumber"] for t in ivims(layer)}
    assert sent == set(numbers)


def test_TP_IS_IVI_GEN_EVGN_BV_03(layer):
    """The number moves to the next unused value for each new IVI (a number in use is skipped, none reused)."""
    a = layer.trigger("ivi", {"payload": new_ivim()})["identification"]["iviIdentificationNumber"]
    layer.trigger("ivi", {"payload": new_ivim(iviIdentificationNumber=a + 2)})  # the application took a+2
    b = layer.trigger("ivi", {"payload": new_ivim()})["identification"]["iviIdentificationNumber"]
    c = layer.trigger("ivi", {"payload": new_ivim()})["identification"]["iviIdentificationNumber"]
    assert (b, c) == (a + 1, a + 3)
    layer.terminate("ivi", f"FR57-{a}", {"mode": "stop"})
    d = layer.trigger("ivi", {"payload": new_ivim()})["identification"]["iviIdentificationNumber"]
    assert d == a + 4  # the freed number is not reused soon


def test_IVI_numbers_wrap_and_run_out(make_layer):
    layer = make_layer(rules={"ivi_id_min": 1, "ivi_id_max": 3})
    got = [layer.trigger("ivi", {"payload": new_ivim()})["identification"]["iviIdentificationNumber"] for _ in range(3)]
    assert got == [1, 2, 3]
    with pytest.raises(ServiceError) as e:
        layer.trigger("ivi", {"payload": new_ivim()})
    assert e.value.code == "id_exhausted"
    layer.terminate("ivi", "FR57-2", {"mode": "stop"})
    assert layer.trigger("ivi", {"payload": new_ivim()})["identification"]["iviIdentificationNumber"] == 2


def test_TP_IS_IVI_GEN_EVGN_BV_04(layer, codec):
    """A new IVIM has iviStatus new, whatever the repetition."""
    layer.trigger("ivi", {"payload": new_ivim()})
    assert mandatory(codec, ivims(layer)[0])["iviStatus"] == 0
    layer.clock.advance(1)
    assert mandatory(codec, ivims(layer)[0])["iviStatus"] == 0


def test_TP_IS_IVI_GEN_EVGN_BV_05(layer, codec, clock):
    """timeStamp is the current time on a new IVIM (TimestampIts, ms since 2004 in TAI)."""
    clock.advance(0.25)
    layer.trigger("ivi", {"payload": new_ivim(timeStamp=12345)})  # the application's value is replaced
    assert mandatory(codec, ivims(layer)[0])["timeStamp"] == timestamp_its(clock.now())


def test_TP_IS_IVI_GEN_EVUP_BV_01(layer, codec, clock):
    """An updated IVIM has iviStatus update."""
    ident = layer.trigger("ivi", {"payload": new_ivim()})["id"]
    ivims(layer)
    clock.advance(5)
    layer.update("ivi", ident, {"payload": with_speed(new_ivim(), 30)})
    [tx] = ivims(layer)
    assert tx.fresh and mandatory(codec, tx)["iviStatus"] == 1


def test_TP_IS_IVI_GEN_EVUP_BV_02(layer, codec):
    """An update can change validTo (and the new validTo ends transmission)."""
    ident = layer.trigger("ivi", {"payload": new_ivim()})["id"]
    new_to = timestamp_its(layer.clock.now() + 3600)
    layer.update("ivi", ident, {"payload": new_ivim(validTo=new_to)})
    assert mandatory(codec, ivims(layer)[-1])["validTo"] == new_to
    assert layer.get("ivi", ident)["window"]["stop"] == iso_utc(layer.clock.now() + 3600)


def test_TP_IS_IVI_GEN_EVUP_BV_03(layer, codec, clock):
    """An update can change validFrom (a future validFrom pauses transmission until then)."""
    ident = layer.trigger("ivi", {"payload": new_ivim()})["id"]
    ivims(layer)
    later = clock.now() + 10
    layer.update("ivi", ident, {"payload": new_ivim(validFrom=timestamp_its(later))})
    assert layer.get("ivi", ident)["state"] == "pending"
    clock.advance(5)
    assert ivims(layer) == []
    clock.set(later)
    [tx] = ivims(layer)
    assert mandatory(codec, tx)["validFrom"] == timestamp_its(later)


def test_TP_IS_IVI_GEN_EVUP_BV_04(layer, codec, clock):
    """timeStamp is refreshed when, and only when, an update changes the content."""
    ident = layer.trigger("ivi", {"payload": new_ivim()})["id"]
    first = mandatory(codec, ivims(layer)[0])["timeStamp"]
    clock.advance(2)
    answer = layer.update("ivi", ident, {"payload": new_ivim(), "dissemination": {"repetition_interval_s": 0.5}})
    assert answer["content_changed"] is False
    clock.advance(0.5)
    assert mandatory(codec, ivims(layer)[0])["timeStamp"] == first  # same bytes, same timeStamp
    clock.advance(2)
    layer.update("ivi", ident, {"payload": with_speed(new_ivim(), 70)})
    assert mandatory(codec, ivims(layer)[0])["timeStamp"] == timestamp_its(clock.now()) != first


def test_TP_IS_IVI_GEN_EVUP_BV_05(layer, codec):
    """The iviIdentificationNumber is unchanged by an update; asking for another one is refused."""
    answer = layer.trigger("ivi", {"payload": new_ivim()})
    number = answer["identification"]["iviIdentificationNumber"]
    layer.update("ivi", answer["id"], {"payload": with_speed(new_ivim(), 30)})
    assert mandatory(codec, ivims(layer)[-1])["iviIdentificationNumber"] == number
    with pytest.raises(ServiceError) as e:
        layer.update("ivi", answer["id"], {"payload": new_ivim(iviIdentificationNumber=number + 1)})
    assert (e.value.code, e.value.path) == ("validation", "payload.ivi.mandatory.iviIdentificationNumber")


def test_TP_IS_IVI_GEN_EVRP_BV_01(layer, clock):
    """Repetition at the interval the application asks for (TP EVRP_BV_01/02), drift-free."""
    layer.trigger("ivi", {"payload": new_ivim(), "dissemination": {"repetition_interval_s": 0.25}})
    t0 = clock.now()
    times = []
    for _ in range(9):
        clock.set(layer.next_deadline())
        times += [round(clock.now() - t0, 6) for _ in ivims(layer)]
    assert times == [0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]


def test_TP_IS_IVI_GEN_EVRP_BV_02(layer, clock):
    """An update changes the repetition interval of a repeating IVI (same bytes, new rhythm)."""
    ident = layer.trigger("ivi", {"payload": new_ivim()})["id"]
    first = ivims(layer)[0].pdu
    layer.update("ivi", ident, {"dissemination": {"repetition_interval_s": 2.0}})
    t0 = clock.now()
    times = []
    for _ in range(3):
        clock.set(layer.next_deadline())
        txs = ivims(layer)
        assert [t.pdu for t in txs] == [first]
        times.append(round(clock.now() - t0, 6))
    assert times == [0, 2.0, 4.0]


def test_TP_IS_IVI_GEN_GFQ_TI_01(layer):
    """Not more often than T_GenIvimMin: a shorter interval is refused with its bounds."""
    with pytest.raises(ServiceError) as e:
        layer.trigger("ivi", {"payload": new_ivim(), "dissemination": {"repetition_interval_s": 0.05}})
    assert e.value.path == "dissemination.repetition_interval_s" and "0.1..10 s" in e.value.reason
    assert layer.list("ivi") == []


def test_TP_IS_IVI_GEN_GFQ_TI_02(layer, clock):
    """Not less often than T_GenIvimMax: a longer interval is refused; the default stays within bounds."""
    with pytest.raises(ServiceError):
        layer.trigger("ivi", {"payload": new_ivim(), "dissemination": {"repetition_interval_s": 11}})
    layer.trigger("ivi", {"payload": new_ivim()})
    t = [clock.now()]
    for _ in range(3):
        clock.set(layer.next_deadline())
        assert ivims(layer)
        t.append(clock.now())
    assert all(0.1 <= b - a <= 10 for a, b in zip(t[1:], t[2:]))


def test_TP_IS_IVI_GEN_EVTR_BV_01(layer, clock):
    """Generation stops when the validity expires (validTo); the entry ends by itself."""
    until = clock.now() + 3.5
    ident = layer.trigger("ivi", {"payload": new_ivim(validTo=timestamp_its(until))})["id"]
    count = 0
    while (deadline := layer.next_deadline()) is not None:
        clock.set(deadline)
        count += len(ivims(layer))
    assert count == 4  # at 0, 1, 2, 3 s; nothing at or after validTo
    assert layer.list("ivi") == []
    with pytest.raises(ServiceError):
        layer.get("ivi", ident)


def test_TP_IS_IVI_GEN_EVTR_BV_02(layer, clock):
    """Generation stops on a termination request (mode stop: no further IVIM)."""
    ident = layer.trigger("ivi", {"payload": new_ivim()})["id"]
    ivims(layer)
    assert layer.terminate("ivi", ident, {"mode": "stop"})["terminated"] == "stopped"
    clock.advance(5)
    assert ivims(layer) == [] and layer.next_deadline() is None


def test_TP_IS_IVI_GEN_EVTR_BV_03(layer, codec, clock):
    """Cancellation: an IVIM with iviStatus cancellation, same number, the last timeStamp; then generation stops."""
    ident = layer.trigger("ivi", {"payload": new_ivim()})["id"]
    last_ts = mandatory(codec, ivims(layer)[0])["timeStamp"]
    clock.advance(3)
    answer = layer.terminate("ivi", ident)
    assert answer["terminated"] == "cancellation"
    [tx] = ivims(layer)
    m = mandatory(codec, tx)
    assert (m["iviStatus"], m["timeStamp"], m["iviIdentificationNumber"]) == (
        2,
        last_ts,
        answer["identification"]["iviIdentificationNumber"],
    )
    assert "optional" not in decoded(codec, tx)["ivi"]
    with pytest.raises(ServiceError) as e:  # a terminating IVI cannot be updated
        layer.update("ivi", ident, {"payload": new_ivim()})
    assert e.value.code == "not_active"
    count = 0
    while (deadline := layer.next_deadline()) is not None:
        clock.set(deadline)
        count += len(ivims(layer))
    assert count == 9  # repeated for ivi_termination_repeat_s (10 s at 1 s), then the entry ends
    assert layer.list("ivi") == []


def test_TP_IS_IVI_GEN_EVTR_BV_04(layer, codec, clock):
    """Negation of another provider's IVI: its provider and number, the latest received timeStamp."""
    foreign = example("ivim")
    foreign["ivi"]["mandatory"]["serviceProviderId"] = {"countryCode": "9400", "providerIdentifier": 12}  # DE12
    _, value = codec.from_jer(foreign, catalog.IVIM)
    layer.on_received(codec.encode(value), SEC_OK, TRANSPORT)
    answer = layer.trigger(
        "ivi",
        {
            "payload": {
                "ivi": {
                    "mandatory": {
                        "serviceProviderId": {"countryCode": "9400", "providerIdentifier": 12},
                        "iviIdentificationNumber": 310,
                        "iviStatus": 3,
                    }
                }
            }
        },
    )
    assert answer["id"] == "neg-DE12-310"
    [tx] = ivims(layer)
    m = mandatory(codec, tx)
    assert (m["iviStatus"], m["iviIdentificationNumber"], m["timeStamp"]) == (3, 310, 674287205000)
    assert country_letters(m["serviceProviderId"]["countryCode"]) == "DE"
    clock.advance(30)
    ivims(layer)
    assert layer.list("ivi") == []  # negation repeated for a while, then over


def test_IVI_negation_of_unknown_ivi_needs_timestamp(layer):
    with pytest.raises(ServiceError) as e:
        layer.trigger(
            "ivi",
            {
                "payload": {
                    "ivi": {
                        "mandatory": {
                            "serviceProviderId": {"countryCode": "9400", "providerIdentifier": 12},
                            "iviIdentificationNumber": 5,
                            "iviStatus": 3,
                        }
                    }
                }
            },
        )
    assert (e.value.code, e.value.path) == ("validation", "payload.ivi.mandatory.timeStamp")


def test_TP_IS_IVI_GEN_COM_BV_01(layer):
    """IVIM goes to BTP-B port 2006."""
    layer.trigger("ivi", {"payload": new_ivim()})
    assert ivims(layer)[0].params.btp_port == 2006


def test_TP_IS_IVI_GEN_COM_BV_02(layer):
    """IVIM is sent GeoBroadcast around the IVI's reference position (GBC, as the ATS configures)."""
    layer.trigger("ivi", {"payload": new_ivim()})
    area = ivims(layer)[0].params.destination
    assert area is not None and area.a >= 1000
    assert round(area.latitude, 4) == 44.8376


SSP_CASES = [
    ("TP_IS_IVI_GEN_SSP_BV_02", {"regulatory", "itisCodes"}, "itis", True),
    ("TP_IS_IVI_GEN_SSP_BO_02", {"regulatory"}, "itis", False),
    ("TP_IS_IVI_GEN_SSP_BV_03", {"regulatory"}, None, True),
    ("TP_IS_IVI_GEN_SSP_BO_03", {"dangerWarning"}, None, False),
    ("TP_IS_IVI_GEN_SSP_BV_05", {"regulatory", "textContainer"}, "text", True),
    ("TP_IS_IVI_GEN_SSP_BO_05", {"regulatory"}, "text", False),
    ("TP_IS_IVI_GEN_SSP_BV_04", {"regulatory", "laneStatus"}, "lane", True),
    ("TP_IS_IVI_GEN_SSP_BO_04", {"regulatory"}, "lane", False),
]


@pytest.mark.parametrize("tp,granted,change,ok", SSP_CASES, ids=[c[0] for c in SSP_CASES])
def test_TP_IS_IVI_GEN_SSP(make_layer, tp, granted, change, ok):
    """The IVI sender SSP test purposes, one per case (BV: sent when permitted; BO: refused, nothing sent)."""
    layer = make_layer(permission_check=permission_check(granted))
    v = new_ivim()
    if change == "itis":
        v["ivi"]["optional"][1]["giv"][0]["roadSignCodes"].append({"code": {"itisCodes": 268}})
    if change == "lane":
        v["ivi"]["optional"][1]["giv"][0]["laneStatus"] = 1
    if change == "text":
        v["ivi"]["optional"].append(
            {
                "tc": [
                    {
                        "relevanceZoneIds": [2],
                        "direction": 0,
                        "text": [{"language": "8000", "textContent": "ZONE 50"}],
                        "data": "",
                    }
                ]
            }
        )
    if ok:
        layer.trigger("ivi", {"payload": v})
        assert len(ivims(layer)) == 1, tp
    else:
        with pytest.raises(ServiceError) as e:
            layer.trigger("ivi", {"payload": v})
        assert e.value.code == "ssp_not_permitted", tp
        assert ivims(layer) == [] and layer.list() == [], tp


def test_TP_IS_IVI_GEN_SSP_BO_06(make_layer, codec):
    """A negation is not sent when the ATs do not permit negation (BV_06: it is when they do)."""
    foreign = {
        "ivi": {
            "mandatory": {
                "serviceProviderId": {"countryCode": "9400", "providerIdentifier": 12},
                "iviIdentificationNumber": 4,
                "timeStamp": 674287205000,
                "iviStatus": 3,
            }
        }
    }
    layer = make_layer(permission_check=permission_check({"regulatory"}))
    with pytest.raises(ServiceError) as e:
        layer.trigger("ivi", {"payload": foreign})
    assert e.value.code == "ssp_not_permitted" and e.value.reason == "SSP not permitted: negation"
    assert ivims(layer) == []
    layer.close()
    allowed = make_layer(permission_check=permission_check({"negation"}))
    allowed.trigger("ivi", {"payload": foreign})
    assert mandatory(codec, ivims(allowed)[0])["iviStatus"] == 3


def test_TP_IS_IVI_GEN_SSP_BO_01(layer):
    """No IVIM is sent for a serviceProviderId that is not this station's provider."""
    with pytest.raises(ServiceError) as e:
        layer.trigger("ivi", {"payload": new_ivim(serviceProviderId={"countryCode": "9400", "providerIdentifier": 12})})
    assert (e.value.code, e.value.path) == ("validation", "payload.ivi.mandatory.serviceProviderId")
    assert ivims(layer) == []


def test_IVI_validity_in_the_past_is_refused(layer, clock):
    with pytest.raises(ServiceError) as e:
        layer.trigger("ivi", {"payload": new_ivim(validTo=timestamp_its(clock.now() - 1))})
    assert e.value.path == "payload.ivi.mandatory.validTo" and "not in the future" in e.value.reason


# --- receive side: collection management --------------------------------------------------------


def received_ivim(codec, number=310, ts=674287205000, status=0, provider=None) -> bytes:
    v = example("ivim")
    m = v["ivi"]["mandatory"]
    m.update(iviIdentificationNumber=number, timeStamp=ts, iviStatus=status)
    if provider:
        m["serviceProviderId"] = provider
    _, value = codec.from_jer(v, catalog.IVIM)
    return codec.encode(value)


def collection(layer, data):
    event = layer.on_received(data, SEC_OK, TRANSPORT)
    return event["ivi"]["collection"] if event else None


def test_TP_IS_IVI_RCV_EVUP_BV_01(layer, codec):
    """iviStatus new: treated as new (and delivered with the security and transport information)."""
    event = layer.on_received(received_ivim(codec), SEC_OK, TRANSPORT)
    assert event["ivi"] == {"collection": "new", "serviceProviderId": "FR57", "iviIdentificationNumber": 310}
    assert event["security"] == SEC_OK and event["transport"] == TRANSPORT
    assert event["pdu"]["ivi"]["mandatory"]["iviIdentificationNumber"] == 310


def test_TP_IS_IVI_RCV_EVUP_BV_02(layer, codec):
    """An unknown (provider, number) pair is new even with iviStatus update."""
    assert collection(layer, received_ivim(codec, status=1)) == "new"


def test_TP_IS_IVI_RCV_EVUP_BV_03(layer, codec):
    """Update: iviStatus update, or the same pair with a more recent timeStamp."""
    collection(layer, received_ivim(codec))
    assert collection(layer, received_ivim(codec, ts=674287206000, status=1)) == "update"
    assert collection(layer, received_ivim(codec, ts=674287207000, status=1)) == "update"


def test_TP_IS_IVI_RCV_EVUP_BV_04(layer, codec):
    """Duplicate: same pair, same timeStamp - not delivered again (nor is an older one)."""
    assert collection(layer, received_ivim(codec)) == "new"
    assert layer.on_received(received_ivim(codec), SEC_OK, TRANSPORT) is None
    assert layer.on_received(received_ivim(codec, ts=674287204000, status=1), SEC_OK, TRANSPORT) is None
    assert layer.stats()["counts"]["rx_ivi_duplicate"] == 1
    assert collection(layer, received_ivim(codec, provider={"countryCode": "9400", "providerIdentifier": 12})) == "new"


def test_TP_IS_IVI_RCV_EVUP_BV_05(layer, codec):
    """Cancellation: treated as cancellation, the IVI leaves the collection."""
    collection(layer, received_ivim(codec))
    assert collection(layer, received_ivim(codec, status=2)) == "cancellation"
    assert collection(layer, received_ivim(codec)) == "new"  # known no more


def test_TP_IS_IVI_RCV_EVUP_BV_06(layer, codec):
    """Negation: treated as negation, the IVI leaves the collection."""
    collection(layer, received_ivim(codec))
    assert collection(layer, received_ivim(codec, status=3)) == "negation"
    assert collection(layer, received_ivim(codec)) == "new"


def test_TP_IS_IVI_RCV_SSP_BV_01_and_BO_01(layer, codec):
    """Only messages the security layer accepted (signature and SSP) reach the applications."""
    assert layer.on_received(received_ivim(codec), SEC_OK, TRANSPORT) is not None
    refused = dict(SEC_OK, verification="ssp_not_permitted: negation")
    assert layer.on_received(received_ivim(codec, number=9), refused, TRANSPORT) is None
    assert layer.stats()["counts"]["rx_not_verified"] == 1


# --- content references the service checks before sending ----------------------------------------


def _gic(v):
    return v["ivi"]["optional"][1]["giv"][0]


def _add_text(v, **part):
    v["ivi"]["optional"].append({"tc": [dict({"relevanceZoneIds": [2], "data": ""}, **part)]})


REFERENCE_CASES = [
    (
        "TP_IS_IVI_GEN_LOC_BV_01",
        lambda v: _gic(v).update(detectionZoneIds=[7]),
        "optional[1].giv[0].detectionZoneIds[0]",
    ),
    ("TP_IS_IVI_GEN_GENAPP_BV_01", lambda v: _gic(v).pop("relevanceZoneIds"), "optional[1].giv[0].relevanceZoneIds"),
    (
        "TP_IS_IVI_GEN_GENAPP_BV_02",
        lambda v: _gic(v).update(relevanceZoneIds=[2, 9]),
        "optional[1].giv[0].relevanceZoneIds[1]",
    ),
    ("TP_IS_IVI_GEN_GENAPP_BV_05", lambda v: _gic(v).update(layoutId=2), "optional[1].giv[0].layoutId"),
    ("TP_IS_IVI_GEN_TEXT_BV_01", lambda v: _add_text(v, relevanceZoneIds=[3]), "optional[2].tc[0].relevanceZoneIds[0]"),
    ("TP_IS_IVI_GEN_TEXT_BV_04", lambda v: _add_text(v, layoutId=1), "optional[2].tc[0].layoutId"),
]


@pytest.mark.parametrize("tp,breaks,path", REFERENCE_CASES, ids=[c[0] for c in REFERENCE_CASES])
def test_TP_IS_IVI_GEN_references(layer, tp, breaks, path):
    """The example IVIM passes; each broken reference is refused with its path, and nothing is sent."""
    layer.trigger("ivi", {"payload": new_ivim()})
    layer.due()
    v = new_ivim()
    breaks(v)
    with pytest.raises(ServiceError) as e:
        layer.trigger("ivi", {"payload": v})
    assert (e.value.code, e.value.path) == ("validation", "payload.ivi." + path)
    assert len(layer.list("ivi")) == 1 and ivims(layer) == []


def test_received_collection_is_bounded_and_counts_when_full(make_layer, codec):
    """Other stations fill the collection: at most ivi_received_max IVIs, the least recently heard forgotten."""
    from rsu.services.received import RxDrop

    hits = []
    layer = make_layer(rules={"ivi_received_max": 3})
    layer.services["ivi"].collection.on_limit = hits.append
    for n in range(1, 6):
        assert collection(layer, received_ivim(codec, number=n)) == "new"
    assert len(layer.services["ivi"].collection) == 3 and hits == ["ivi-collection"] * 2
    assert layer.receive(received_ivim(codec, number=5), SEC_OK, TRANSPORT) == (None, RxDrop.IVI_REPEAT)
    assert layer.receive(received_ivim(codec, number=5, ts=674287204000), SEC_OK, TRANSPORT) == (
        None,
        RxDrop.IVI_OUTDATED,
    )
    assert collection(layer, received_ivim(codec, number=1)) == "new"  # forgotten, so new again
