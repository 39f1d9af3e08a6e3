"""Two full stations in memory (tests/stations/link.py): station A triggers, B's IS_DataProviding receives.

Every part is real (service layer and SQLite store, security entity with ATs of one test PKI, GN core,
send and receive pipelines); only the medium and the clock are in memory, so each test sees exactly
what crossed the link and when, and moves time by advancing the manual clock.
"""

from __future__ import annotations

from services.support import example, new_ivim

from rsu import catalog
from rsu.transports import gn
from rsu.clock import iso_utc, timestamp_its
from rsu.pipeline.outcomes import Accepted, Dropped, Held, HoldEnded
from rsu.pipeline.receive import Received
from rsu.security.verify import parse_signed
from rsu.transports.drops import DropReason
from stations.link import Link, make_at

T = "gn"


def received_at(events: list[dict]) -> list[str]:
    return [e["transport"]["received_at"] for e in events]


def offsets(clock_start: float, frames) -> list[float]:
    return [round(f.at - clock_start, 6) for f in frames]


def test_a_spatem_triggered_at_a_reaches_b_verified_with_a_signer(pair, clock):
    a, b, link = pair
    a.layer.trigger("tlm", {"payload": example("spatem")})
    frames = link.advance(0)
    assert [(f.source, f.sent.kind) for f in frames] == [("a", catalog.SPATEM)]
    at = a.security.pool.current(catalog.SPATEM)
    assert at is not None
    # B: the frame crossed GN, was verified and delivered; the outcome carries the event B's subscribers got
    [arrival] = b.arrivals
    [event] = b.events()
    assert arrival.outcomes == (Received(T, "spatem"), Accepted(T, "spatem", "TLM", event))
    assert event["message"] == "spatem" and event["pdu"]["header"]["stationID"] == 3120101
    assert event["security"] == {
        "its_aid": 137,
        "ssp": at.ssp(137).hex(),
        "signer": at.hashed_id8.hex(),
        "verification": "ok",
        "secured_data": bytes(gn.parse_packet(frames[0].sent.frame[14:]).secured).hex(),  # as received
    }
    assert event["transport"]["source"] == a.gn.address.hex() and event["transport"]["sequence_number"] == 0
    assert event["pdu"]["spat"] == a.layer.get("tlm", "1201")["payload"]["spat"]  # what A sent, field by field
    assert frames[0].signer == ("certificate", at.hashed_id8.hex())  # a new AT's first message
    assert a.dropped == [] and b.sent == []
    # A hears nothing: B sent nothing, and its own frame looped back stops at its GN core
    assert a.arrivals == [] and a.events() == []
    looped = a.deliver(frames[0])
    assert looped.gn_drop is not None and looped.gn_drop.reason is DropReason.OWN_FRAME and looped.outcomes == ()


def test_repetition_gives_one_reception_per_interval_at_b(pair, clock):
    """A MAPEM repeated every 0.5 s for 2 s: 4 intervals, 5 receptions; an IVIM at its own (catalog) 1 s: 3;
    a SPATEM, which the facility does not repeat: once per trigger."""
    a, b, link = pair
    start = clock.now()
    a.layer.trigger("rlt", {"payload": example("mapem"), "dissemination": {"repetition_interval_s": 0.5}})
    a.layer.trigger("ivi", {"payload": new_ivim()})
    a.layer.trigger("tlm", {"payload": example("spatem")})
    link.advance(2.0)
    assert clock.now() == start + 2.0
    events = b.events()
    assert received_at([e for e in events if e["message"] == "mapem"]) == [
        iso_utc(start + t) for t in (0, 0.5, 1.0, 1.5, 2.0)
    ]
    assert received_at([e for e in events if e["message"] == "spatem"]) == [iso_utc(start)]
    assert [o.event for o in b.accepted()] == events  # one Accepted outcome per event B's subscriber got
    assert [f.sent.repetition for f in a.sent if f.sent.kind is catalog.MAPEM] == [False, True, True, True, True]
    # every IVIM reached B's pipeline; the services deliver an IVI once and drop its repetitions as such
    ivim = [a_ for a_ in b.arrivals if a_.frame is not None and a_.frame.sent.kind is catalog.IVIM]
    assert [round(a_.at - start, 6) for a_ in ivim] == [0, 1.0, 2.0]
    assert [o.reason for o in b.outcomes(Dropped)] == ["ivi-repeat"] * 2
    assert b.outcomes(Held) == []


def test_srem_from_b_is_answered_by_an_ssem_from_a(pair, clock):
    """B (a bus, station 2104711) asks for priority; A's TLC holds the request, its application grants it, and
    B receives A's SSEM naming B's request and the status."""
    a, b, link = pair
    b.layer.trigger("tlc", {"payload": example("srem")})
    frames = link.advance(0)
    assert [(f.source, f.sent.kind) for f in frames] == [("b", catalog.SREM)]
    [srem] = a.events("srem")
    assert srem["security"]["its_aid"] == 140 and srem["security"]["verification"] == "ok"
    assert srem["security"]["signer"] == b.security.pool.current(catalog.SREM).hashed_id8.hex()
    [pending] = a.layer.pending_requests()
    assert pending["key"] == "station-2104711:1201:5" and pending["requestType"] == "priorityRequest"

    a.layer.trigger("tlc", {"decision": {"request": pending["key"], "status": "granted"}})
    frames = link.advance(0)
    assert [(f.source, f.sent.kind) for f in frames] == [("a", catalog.SSEM)]
    [ssem] = b.events("ssem")
    assert ssem["security"]["its_aid"] == 637
    assert ssem["security"]["signer"] == a.security.pool.current(catalog.SSEM).hashed_id8.hex()
    [status] = ssem["pdu"]["ssm"]["status"]
    assert status["id"]["id"] == 1201
    [package] = status["sigStatus"]
    assert package["requester"] == {
        "id": {"stationID": 2104711},
        "request": 5,
        "sequenceNumber": 0,
        "role": "publicTransport",
    }
    assert package["status"] == "granted"


def test_an_ivim_stops_at_its_end_time_and_b_receives_no_more(pair, clock):
    a, b, link = pair
    start = clock.now()
    valid_to = timestamp_its(start + 3.5)
    answer = a.layer.trigger("ivi", {"payload": new_ivim(validTo=valid_to)})
    frames = link.advance(10.0)
    assert offsets(start, frames) == [0, 1.0, 2.0, 3.0]  # nothing at or after validTo
    assert a.layer.list("ivi") == []
    received = b.outcomes(Received)
    assert len(received) == 4 and all(r.message == "ivim" for r in received)
    # B delivers the IVI once; its repetitions (same provider, number, timeStamp) are dropped as such
    [accepted] = b.accepted("ivim")
    assert accepted.event["ivi"] == {
        "collection": "new",
        "serviceProviderId": "FR57",
        "iviIdentificationNumber": answer["identification"]["iviIdentificationNumber"],
    }
    assert accepted.event["pdu"]["ivi"]["mandatory"]["validTo"] == valid_to
    assert [o.reason for o in b.outcomes(Dropped)] == ["ivi-repeat"] * 3
    assert link.advance(10.0) == [] and len(b.outcomes(Received)) == 4


def test_at_rotation_b_sees_the_new_signer_whose_first_message_carries_its_certificate(station, clock):
    """A has two MAPEM ATs: the first ends in one hour, and with a rotation margin of 3595 s A leaves it after
    5 s. B accepts every message; the first message of the new AT carries its full certificate (so B, which never
    saw it, needs no hold), the next ones its digest."""
    start = clock.now()
    old = make_at(clock, "mapem", start_s=-3600, hours=2)  # ends at start + 3600 s
    new = make_at(clock, "mapem", start_s=-3600, hours=168)
    a = station("a", ats=[old, new], rotation_margin=3595.0, certificate_interval=10.0)
    b = station("b", station_id=2104711)
    link = Link(clock, a, b)
    a.layer.trigger("rlt", {"payload": example("mapem"), "dissemination": {"repetition_interval_s": 0.5}})
    frames = link.advance(6.0)
    h_old, h_new = old.certificate.hashed_id8.hex(), new.certificate.hashed_id8.hex()
    signers = [(round(f.at - start, 6), f.signer) for f in frames]
    # a certificate only when an AT starts (certificate_interval 10 s): at 0 s, and at 5 s for the new AT
    assert signers == [
        (0.0, ("certificate", h_old)),
        *((i / 2, ("digest", h_old)) for i in range(1, 10)),
        (5.0, ("certificate", h_new)),
        (5.5, ("digest", h_new)),
        (6.0, ("digest", h_new)),
    ]
    assert [o.event["security"]["signer"] for o in b.accepted("mapem")] == [h for _, (_, h) in signers]
    assert b.outcomes(Dropped, Held) == []


def test_an_unknown_signer_is_held_until_its_certificate_arrives(pair, clock):
    """The first frame (with A's certificate) is lost: B holds the next one (a digest it cannot resolve) and
    releases it when A's next certificate arrives, after delivering that one."""
    a, b, link = pair
    start = clock.now()
    link.wire(a, b).lose = 1
    a.layer.trigger("rlt", {"payload": example("mapem"), "dissemination": {"repetition_interval_s": 0.5}})
    link.advance(1.0)
    h8 = a.security.pool.current(catalog.MAPEM).hashed_id8.hex()
    lost, digest, certificate = link.wire(a, b).log
    assert link.wire(a, b).lost == [lost] and lost.signer == ("certificate", h8)
    assert digest.signer == ("digest", h8) and certificate.signer == ("certificate", h8)
    first, second = b.arrivals
    assert first.frame is digest and first.outcomes == (Received(T, "mapem"), Held(T, "mapem", start + 0.5 + 2.0))
    events = b.events()
    assert second.frame is certificate and second.outcomes == (
        Received(T, "mapem"),
        Accepted(T, "mapem", "RLT", events[0]),
        HoldEnded(T, "mapem", "released"),
        Accepted(T, "mapem", "RLT", events[1]),
    )
    # the released frame keeps the time it arrived; both are A's, verified
    assert received_at(events) == [iso_utc(start + 1.0), iso_utc(start + 0.5)]
    assert {e["security"]["signer"] for e in events} == {h8}


def test_a_held_frame_whose_certificate_never_comes_expires(pair, clock):
    """Held at 0.5 s, then nothing more reaches B: the housekeeping drops it when its 2 s are over."""
    a, b, link = pair
    start = clock.now()
    wire = link.wire(a, b)
    wire.lose = 1
    a.layer.trigger("rlt", {"payload": example("mapem"), "dissemination": {"repetition_interval_s": 0.5}})
    link.advance(0.5)
    wire.paused = True  # nothing more reaches B
    link.advance(3.0)
    h8 = a.security.pool.current(catalog.MAPEM).hashed_id8.hex()
    # it left the hold at the first housekeeping after 0.5 + 2 s (the stations step every 0.5 s)
    assert [round(a_.at - start, 6) for a_ in b.arrivals] == [0.5, 3.0]
    assert b.arrivals[1].frame is None
    assert [o for a_ in b.arrivals for o in a_.outcomes] == [
        Received(T, "mapem"),
        Held(T, "mapem", start + 2.5),
        HoldEnded(T, "mapem", "expired"),
        Dropped("security:held-expired", T, "mapem", f"signer certificate {h8} did not arrive within 2.0 s"),
    ]
    assert b.events() == []
    assert len(wire.queue) == 6  # 1.0 .. 3.5 s, waiting


def test_a_gn_duplicate_is_dropped_at_b(pair, clock):
    a, b, link = pair
    a.layer.trigger("tlm", {"payload": example("spatem")})
    [frame] = link.advance(0)
    again = b.deliver(frame)
    assert again.outcomes == (
        Received(T, "spatem"),
        Dropped(
            "gn-duplicate", T, "spatem", f"GN source {a.gn.address.to_bytes().hex()} sequence number 0 seen before"
        ),
    )
    assert len(b.events()) == 1


def test_reordered_frames_are_all_delivered(pair, clock):
    """Three MAPEM frames held back and delivered newest first: distinct GN sequence numbers, none is a duplicate."""
    a, b, link = pair
    wire = link.wire(a, b)
    wire.paused = True
    a.layer.trigger("rlt", {"payload": example("mapem"), "dissemination": {"repetition_interval_s": 0.5}})
    link.advance(1.0)
    assert len(wire.queue) == 3 and b.arrivals == []
    arrivals = wire.release([2, 1, 0])
    assert [a_.frame.packet.extended.sequence_number for a_ in arrivals] == [2, 1, 0]
    assert [type(o) for a_ in arrivals for o in a_.outcomes] == [Received, Accepted] * 3


def test_b_asks_for_the_unknown_certificate_and_a_sends_it_at_once(station, clock):
    """A sends its certificate only every 10 s, and the first one is lost. B holds A's next (digest) frame and
    asks for the certificate in its own next message (inlineP2pcdRequest, the AT's HashedId3); A's next frame
    carries the certificate although its 10 s are not over, and B releases the held frame."""
    start = clock.now()
    a = station("a", certificate_interval=10.0)
    b = station("b", station_id=2104711, certificate_interval=10.0)
    link = Link(clock, a, b)
    link.wire(a, b).lose = 1
    a.layer.trigger("rlt", {"payload": example("mapem"), "dissemination": {"repetition_interval_s": 0.5}})
    link.advance(0.5)
    h8 = a.security.pool.current(catalog.MAPEM).hashed_id8
    assert [o for a_ in b.arrivals for o in a_.outcomes] == [Received(T, "mapem"), Held(T, "mapem", start + 2.5)]
    assert b.security.pending_certificate_requests == [h8[-3:]]

    b.layer.trigger("ivi", {"payload": new_ivim()})  # B's next signed message, of any service
    [request] = link.advance(0)
    assert request.source == "b" and parse_signed(request.packet.secured).header["inlineP2pcdRequest"] == [h8[-3:]]
    assert b.security.pending_certificate_requests == []

    frames = link.advance(0.5)
    assert [(f.source, f.signer) for f in frames] == [("a", ("certificate", h8.hex()))]
    released = b.arrivals[-1]
    assert [type(o) for o in released.outcomes] == [Received, Accepted, HoldEnded, Accepted]
    assert released.outcomes[2] == HoldEnded(T, "mapem", "released")
    assert received_at(b.events("mapem")) == [iso_utc(start + 1.0), iso_utc(start + 0.5)]
    # and A goes back to digests until its interval is over
    assert [f.signer[0] for f in link.advance(1.0) if f.source == "a"] == ["digest", "digest"]
