"""Counters that add up: 10,000 mixed frames (valid, forged, GN duplicates, SHB replays, unknown and
late-known signers, malformed, wrong SSP, unknown port, unsecured, IVI repeats and outdated versions;
over GN and MQTT) go through the real receive path of a daemon running in this process, and for every
message type and transport: received = accepted + dropped{reason} + held, with every reason's count
as expected."""

from __future__ import annotations

import random
from collections import Counter

import aiomqtt
import pytest

import tests.security.samples as samples
from rsu import catalog
from rsu.clock import ManualClock, timestamp_its
from tests.ops.rxharness import OVER_THE_RSU, Neighbour, feed_gn, feed_mqtt, random_digest, running_daemon

N_FRAMES = 10_000
START = 1_780_000_000.0  # 2026-05-28, an injected clock: frames are signed and judged at the same "now"


def identity_holds(metrics) -> dict:
    """Every (message, transport) row, asserting received = accepted + dropped + held."""
    rows = metrics.receive_accounting()
    for key, row in rows.items():
        assert row["received"] == row["accepted"] + row["dropped"] + row["held"], (key, row)
    return rows


def value_of(name: str, clock: ManualClock, number: int) -> dict:
    value = samples.ALL[name]()
    if name == "ivim":
        value["ivi"]["mandatory"].update(
            iviIdentificationNumber=number % 32000 + 1, timeStamp=timestamp_its(clock.now())
        )
    return value


@pytest.mark.slow
async def test_ten_thousand_mixed_frames_add_up_for_every_service(tmp_path):
    clock = ManualClock(START)
    rnd = random.Random(11)
    expected: Counter[tuple[str, str, str]] = Counter()  # (message, transport, fate)
    async with running_daemon(tmp_path / "state", clock) as d:
        nb = Neighbour(d.config.pki_path, clock)
        restricted = nb.new_signer(catalog.SREM, bytes.fromhex("02800000"))  # may request no role's priority
        kinds = list(catalog.MESSAGES)
        sent = 0
        number = 0

        def gn(frame: bytes, message: str, fate: str) -> None:
            nonlocal sent
            feed_gn(d, frame)
            expected[(message, "gn", fate)] += 1
            sent += 1

        while sent < N_FRAMES:
            clock.advance(0.001)  # every signature gets its own generationTime
            kind = rnd.choice(kinds)
            number += 1
            pdu = nb.pdu(kind, value_of(kind.name, clock, number))
            m = kind.name
            case = rnd.random()
            if case < 0.25:
                gn(nb.frame(kind, pdu), m, "accepted")
            elif case < 0.38:
                gn(nb.frame(kind, pdu, with_certificate=False), m, "accepted")  # digest of a known AT
            elif case < 0.45:
                forged = bytearray(nb.frame(kind, pdu))
                forged[-5] ^= 0x5A
                gn(bytes(forged), m, "security:invalid-signature")
            elif case < 0.50:
                frame = nb.frame(kind, pdu, area=OVER_THE_RSU)  # GBC: has a GN sequence number
                gn(frame, m, "accepted")
                gn(frame, m, "gn-duplicate")
            elif case < 0.55:
                frame = nb.frame(kind, pdu)  # SHB: no sequence number
                gn(frame, m, "accepted")
                gn(frame, m, "replay")
            elif case < 0.65:
                gn(random_digest(nb.frame(kind, pdu, with_certificate=False)), m, "unknown-signer")
            elif case < 0.68:
                late = nb.new_signer(kind)  # digest frames held until the certificate comes with a later one
                for i in range(3):  # (each its own IVI: released after the third, they must not be repeats)
                    number += 1
                    clock.advance(0.001)
                    gn(
                        nb.frame(kind, nb.pdu(kind, value_of(m, clock, number)), signer=late, with_certificate=i == 2),
                        m,
                        "accepted",
                    )
            elif case < 0.76:
                frame = nb.frame(kind, pdu)
                broken = rnd.choice(
                    [
                        frame[: rnd.randrange(14, len(frame) - 1)],
                        rnd.randbytes(rnd.randrange(60)),
                        frame[:14] + b"\x00" + frame[15:],
                    ]
                )
                feed_gn(d, broken)
                sent += 1  # its fate is a transport reason; the identity below covers it
            elif case < 0.80:
                srem = nb.pdu(catalog.SREM, samples.srem())
                gn(nb.frame(catalog.SREM, srem, signer=restricted), "srem", "security:ssp-violation")
            elif case < 0.82:
                cam_port = catalog.MessageKind(
                    kind.name,
                    kind.pdu,
                    kind.module,
                    kind.body,
                    kind.message_id,
                    kind.protocol_version,
                    kind.service,
                    kind.its_aid,
                    2001,
                )
                gn(nb.frame(cam_port, pdu), "unknown", "unknown-btp-port")
            elif case < 0.84:
                gn(nb.frame(kind, pdu, secured=False), m, "unsecured")
            elif case < 0.88:
                value = value_of("ivim", clock, number)
                ivim = nb.pdu(catalog.IVIM, value)
                gn(nb.frame(catalog.IVIM, ivim), "ivim", "accepted")
                clock.advance(0.001)
                gn(nb.frame(catalog.IVIM, ivim), "ivim", "ivi-repeat")  # new signature, same IVI version
                value["ivi"]["mandatory"]["timeStamp"] -= 1000  # the same IVI as it was a second before
                clock.advance(0.001)
                gn(nb.frame(catalog.IVIM, nb.pdu(catalog.IVIM, value)), "ivim", "ivi-outdated")
            elif case < 0.97:
                k = rnd.choice([catalog.SREM, catalog.IVIM])
                feed_mqtt(d, nb.mqtt_message(k, nb.pdu(k, value_of(k.name, clock, number))))
                expected[(k.name, "mqtt", "accepted")] += 1
                sent += 1
            else:
                topic = nb.mqtt_topics.publish_topic(catalog.SREM, "1202")
                feed_mqtt(d, aiomqtt.Message(topic, b"", 1, False, 1, None))
                expected[("srem", "mqtt", "malformed-mqtt-payload")] += 1
                sent += 1

        rows = identity_holds(d.metrics)  # exact at every moment, held frames included
        assert sum(r["received"] for r in rows.values()) == sent
        assert sum(r["held"] for r in rows.values()) > 0
        clock.advance(d.config.security.limits.hold_seconds + 0.1)
        d._refresh_gauges()  # housekeeping: held frames whose certificate never came expire
        rows = identity_holds(d.metrics)
        assert sum(r["received"] for r in rows.values()) == sent
        assert all(r["held"] == 0 for r in rows.values())

    got: Counter[tuple[str, str, str]] = Counter()
    for s in d.metrics.rx_dropped.collect()[0].samples:
        if s.name.endswith("_total"):
            got[(s.labels["message"], s.labels["transport"], s.labels["reason"])] += int(s.value)
    for s in d.metrics.accepted.collect()[0].samples:
        if s.name.endswith("_total"):
            got[(s.labels["message"], s.labels["transport"], "accepted")] += int(s.value)
    unknown_signer = {k: n for k, n in expected.items() if k[2] == "unknown-signer"}
    for (m, t, _), n in unknown_signer.items():  # pushed out of the full hold, or expired there
        assert got.pop((m, t, "security:hold-queue-full"), 0) + got.pop((m, t, "security:held-expired"), 0) == n
        del expected[(m, t, "unknown-signer")]
    transport_level = {k: n for k, n in got.items() if k not in expected}
    assert all(
        k[2]
        in (
            "malformed-gn",
            "malformed-secured-envelope",
            "malformed-ethernet",
            "not-geonetworking",
            "unsupported-gn",
            "malformed-btp",
            "security:malformed",
        )
        for k in transport_level
    ), transport_level  # what the cut and scrambled frames give
    assert {k: got[k] for k in expected} == dict(expected)
    services = {catalog.BY_NAME[m].service for (m, t, fate) in expected if fate == "accepted"}
    assert services == {"TLM", "RLT", "IVI", "TLC", "GPC"}
    assert d.metrics.limit_hits.labels("held-frames")._value.get() > 0  # the flood of unknown signers hit the bound
    hold = {
        e: sum(
            s.value
            for s in d.metrics.hold_events.collect()[0].samples
            if s.name.endswith("_total") and s.labels["event"] == e
        )
        for e in ("held", "released", "expired", "evicted")
    }
    assert hold["held"] == hold["released"] + hold["expired"] + hold["evicted"] and hold["released"] > 0
