"""MQTT sans-I/O core: quadkeys, the topic scheme, payload envelopes, expiry, the stale-aware
publish queue and the reconnect backoff, all without a broker or a sleep."""

from __future__ import annotations

import base64
import json
import random

import pytest

from rsu import catalog
from rsu.clock import ManualClock
from rsu.transports import quadkey as qk
from rsu.transports.base import DisseminationParams, GeoArea, ReceivedFrame
from rsu.transports.config import ConfigError, MqttConfig
from rsu.transports.drops import Drop, DropReason
from rsu.transports.mqtt_core import Backoff, MqttCore, Publication, PublishQueue, decode_envelope

from .conftest import NOW, RSU_LAT, RSU_LON

SIGNED = bytes.fromhex("0381004003800a") + b"0123456789" + b"\x40\x01\x89" + bytes(8) + b"\x80" + bytes(8)


def mqtt_config(**kw) -> MqttConfig:
    cfg = MqttConfig(latitude=RSU_LAT, longitude=RSU_LON, source="rsu_42", **kw)
    cfg.validate()
    return cfg


# ------------------------------------------------------------------ quadkeys


def test_quadkeys_match_the_bing_tile_system():
    assert qk.from_tile(3, 5, 3) == "213"  # the example of the Bing Maps tile system article
    assert qk.to_tile("213") == (3, 5, 3)
    assert qk.quadkey(51.5074, -0.1278, 3) == "031"  # London
    assert qk.quadkey(48.8566, 2.3522, 4) == "1202"  # Paris
    assert qk.quadkey(-33.87, 151.21, 2) == "31"  # Sydney: south-east
    assert qk.quadkey(89.9, -180.0, 2) == "00" and qk.quadkey(-89.9, 179.999, 2) == "33"  # clamped
    key = qk.quadkey(RSU_LAT, RSU_LON, 22)
    assert len(key) == 22 and key.startswith("1202") and qk.quadkey(RSU_LAT, RSU_LON, 10) == key[:10]


def test_quadkey_neighbours_wrap_at_the_antimeridian_and_stop_at_the_poles():
    x, y, d = qk.to_tile(qk.quadkey(0.1, 179.99, 5))
    around = {qk.to_tile(k)[:2] for k in qk.neighbours(qk.from_tile(x, y, d))}
    assert (0, y) in around and len(around) == 9  # east of the last column is column 0
    assert len(qk.neighbours("00000")) == 6  # top row: no tiles north of it
    with pytest.raises(ValueError):
        qk.validate("1204")


# ------------------------------------------------------------------ topics


def test_publish_topic_levels_follow_the_its_client_scheme():
    core = MqttCore(mqtt_config(), ManualClock(NOW))
    area = GeoArea(RSU_LAT, RSU_LON, "circle", 200.0)
    pub = core.publication(SIGNED, DisseminationParams(catalog.SPATEM, destination=area, lifetime_s=2.0))
    digits = "/".join(qk.quadkey(RSU_LAT, RSU_LON, 22))
    assert pub.topic == f"default/inQueue/v2x/spatem/rsu_42/{digits}"
    assert pub.payload == SIGNED and pub.qos == 1 and not pub.retain
    assert pub.expiry_interval(NOW) == 2 and pub.deadline == NOW + 2.0


def test_every_topic_part_and_type_name_is_configurable():
    cfg = MqttConfig.from_dict(
        {
            "latitude": RSU_LAT,
            "longitude": RSU_LON,
            "source": "wse_app_1",
            "prefix": "5GCroCo/fr",
            "publish_queue": "in",
            "suffix": "road7",
            "type_names": {"mapem": "map", "spatem": "spat"},
            "quadkey_depth": 6,
        }
    )
    core = MqttCore(cfg, ManualClock(NOW))
    pub = core.publication(SIGNED, DisseminationParams(catalog.MAPEM, extra={"reference_point": (-33.87, 151.21)}))
    assert pub.topic == "5GCroCo/fr/in/road7/map/wse_app_1/" + "/".join(qk.quadkey(-33.87, 151.21, 6))
    assert pub.retain  # MAPEM is a retained type by default
    # an explicit quadkey hint is cut to the configured depth
    pub = core.publication(SIGNED, DisseminationParams(catalog.SPATEM, extra={"quadkey": "0123012301"}))
    assert pub.topic.endswith("/spat/wse_app_1/0/1/2/3/0/1")
    # an empty prefix gives a "/"-rooted topic, as in its-client
    rooted = MqttCore(mqtt_config(prefix=""), ManualClock(NOW)).publication(SIGNED, DisseminationParams(catalog.IVIM))
    assert rooted.topic.startswith("/inQueue/v2x/ivim/rsu_42/")


def test_subscriptions_cover_the_rsu_tile_and_its_neighbours():
    core = MqttCore(mqtt_config(subscribe=("srem", "ssem"), subscribe_depth=16), ManualClock(NOW))
    filters = core.subscription_filters()
    assert len(filters) == 18
    own = "/".join(qk.quadkey(RSU_LAT, RSU_LON, 16))
    assert f"default/outQueue/v2x/srem/+/{own}/#" in filters
    assert all(f.endswith("/#") and "/+/" in f for f in filters)
    flat = MqttCore(mqtt_config(subscribe_depth=0), ManualClock(NOW)).subscription_filters()
    assert flat == ["default/outQueue/v2x/srem/#"]


@pytest.mark.parametrize(
    "topic, reason",
    [
        ("other/outQueue/v2x/srem/car1/1/2", DropReason.MALFORMED_TOPIC),
        ("default/outQueue/v2x", DropReason.MALFORMED_TOPIC),
        ("default/outQueue/v3x/srem/car1/1", DropReason.MALFORMED_TOPIC),
        ("default/outQueue/v2x/srem/car1/1/9", DropReason.MALFORMED_TOPIC),
        ("default/outQueue/v2x/srem/car1/12", DropReason.MALFORMED_TOPIC),
        ("default/outQueue/v2x/srem//1", DropReason.MALFORMED_TOPIC),
        ("default/outQueue/v2x/cam/car1/1/2", DropReason.UNKNOWN_MESSAGE_TYPE),
        ("default/outQueue/v2x/srem/rsu_42/1/2", DropReason.OWN_FRAME),
    ],
)
def test_received_topics_that_do_not_fit_are_dropped(topic, reason):
    got = MqttCore(mqtt_config(), ManualClock(NOW)).receive(topic, SIGNED)
    assert isinstance(got, Drop) and got.reason == reason


def test_a_received_publication_becomes_a_frame():
    core = MqttCore(mqtt_config(), ManualClock(NOW))
    got = core.receive("default/outQueue/v2x/srem/car1/1/2/0/2", SIGNED, retained=True, qos=1, expiry_interval=3)
    assert isinstance(got, ReceivedFrame)
    assert got.secured == SIGNED and got.btp_port == 2007 and got.source == "car1" and got.secured_packet
    assert got.payload_offset == 0 and got.transport == "mqtt" and got.received_at == NOW
    assert got.info == {
        "topic": "default/outQueue/v2x/srem/car1/1/2/0/2",
        "queue": "outQueue",
        "message_type": "srem",
        "quadkey": "1202",
        "retained": True,
        "qos": 1,
        "expiry_interval": 3,
    }
    empty = core.receive("default/outQueue/v2x/srem/car1/1", b"")
    assert isinstance(empty, Drop) and empty.reason == DropReason.MALFORMED_PAYLOAD


# ------------------------------------------------------------------ JSON envelope


def test_json_envelope_round_trip_and_staleness():
    clock = ManualClock(NOW)
    core = MqttCore(mqtt_config(payload_format="json"), clock)
    pub = core.publication(SIGNED, DisseminationParams(catalog.SREM, lifetime_s=2.0))
    obj = json.loads(pub.payload)
    assert obj["message_type"] == "srem" and obj["source_uuid"] == "rsu_42"
    assert obj["timestamp"] == NOW * 1000 and obj["validity_duration"] == 2.0
    assert obj["its_aid"] == 140 and obj["btp_port"] == 2007 and obj["secured"] is True
    assert base64.b64decode(obj["message"]) == SIGNED
    topic = pub.topic.replace("rsu_42", "car9").replace("inQueue", "outQueue")
    got = core.receive(topic, pub.payload)
    assert isinstance(got, ReceivedFrame) and got.secured == SIGNED and got.info["timestamp_ms"] == NOW * 1000
    clock.advance(2.5)
    stale = core.receive(topic, pub.payload)
    assert isinstance(stale, Drop) and stale.reason == DropReason.STALE


@pytest.mark.parametrize(
    "payload, parses",
    [
        (b"not json", False),
        (b"[]", False),
        (b'{"message": 5}', False),
        (b'{"message": "***"}', False),
        (b'{"message": "AA==", "timestamp": "yesterday"}', False),
        (b'{"message": "AA==", "message_type": "spatem"}', True),  # well-formed, but the topic says srem
    ],
)
def test_bad_json_envelopes_are_dropped(payload, parses):
    core = MqttCore(mqtt_config(payload_format="json"), ManualClock(NOW))
    got = core.receive("default/outQueue/v2x/srem/car1/1", payload)
    assert isinstance(got, Drop) and got.reason == DropReason.MALFORMED_PAYLOAD
    if parses:
        assert decode_envelope(payload).message == b"\x00"
    else:
        with pytest.raises(ValueError):
            decode_envelope(payload)


# ------------------------------------------------------------------ expiry and the queue


def test_expiry_comes_from_the_message_lifetime_or_the_per_type_override():
    core = MqttCore(mqtt_config(expiry_s={"mapem": 300}), ManualClock(NOW))
    spat = core.publication(SIGNED, DisseminationParams(catalog.SPATEM, lifetime_s=0.3))
    assert spat.expiry_interval(NOW) == 1  # rounded up: 0 would mean "never expires" in MQTT
    mapem = core.publication(SIGNED, DisseminationParams(catalog.MAPEM, lifetime_s=5))
    assert mapem.expiry_interval(NOW) == 300 and mapem.retain
    assert mapem.expiry_interval(NOW + 100.5) == 200  # what is left when it finally goes out
    with pytest.raises(ValueError):
        core.publication(SIGNED, DisseminationParams(catalog.IVIM, lifetime_s=0))


def _pub(topic, clock, validity, retain=False, kind="spatem") -> Publication:
    now = clock.now()
    return Publication(topic, topic.encode(), 1, retain, kind, now, now + validity)


def test_the_queue_never_hands_out_stale_publications():
    clock = ManualClock(NOW)
    q = PublishQueue(clock, max_items=10)
    q.push(_pub("spat1", clock, 1.0))
    q.push(_pub("map", clock, 60.0, retain=True, kind="mapem"))
    q.push(_pub("spat2", clock, 1.0))
    clock.advance(1.5)  # broker outage: both SPATEMs go stale
    q.push(_pub("spat3", clock, 1.0))
    first, stale = q.pop()
    assert first.topic == "map" and [p.topic for p in stale] == ["spat1"]
    second, stale = q.pop()
    assert second.topic == "spat3" and [p.topic for p in stale] == ["spat2"]
    assert q.pop() == (None, []) and len(q) == 0


def test_the_queue_keeps_only_the_newest_retained_per_topic_and_is_bounded():
    clock = ManualClock(NOW)
    q = PublishQueue(clock, max_items=3)
    q.push(_pub("map/1", clock, 60, retain=True))
    q.push(_pub("map/1", clock, 60, retain=True))
    assert len(q) == 1
    q.push(_pub("a", clock, 60))
    q.push(_pub("b", clock, 60))
    evicted = q.push(_pub("c", clock, 60))
    assert [p.topic for p in evicted] == ["map/1"] and len(q) == 3
    # a failed send goes back to the front
    pub, _ = q.pop()
    q.push_front(pub)
    assert q.pop()[0].topic == "a"


def test_push_front_does_not_resurrect_an_older_retained_message():
    clock = ManualClock(NOW)
    q = PublishQueue(clock)
    old = _pub("map/1", clock, 60, retain=True)
    q.push(old)
    taken, _ = q.pop()
    newer = _pub("map/1", clock, 60, retain=True)
    q.push(newer)
    q.push_front(taken)  # the send of the old one failed meanwhile
    assert q.pop()[0] is newer and q.pop()[0] is None


# ------------------------------------------------------------------ backoff


def test_backoff_grows_to_its_cap_and_resets():
    b = Backoff(initial=0.5, maximum=4.0, jitter=0.0)
    assert [b.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    b.reset()
    assert b.next_delay() == 0.5
    j = Backoff(initial=1.0, maximum=30.0, jitter=0.2, rng=random.Random(7))
    delays = [j.next_delay() for _ in range(8)]
    assert all(0.8 * min(30, 2**i) <= d <= min(30, 1.2 * 2**i) for i, d in enumerate(delays))
    assert len(set(delays)) == len(delays)  # jittered


def test_mqtt_configuration_errors_name_the_field(tmp_path):
    pos = {"latitude": RSU_LAT, "longitude": RSU_LON}
    for data, field in [
        ({"qos": 3}, "qos"),
        ({"payload_format": "xml"}, "payload_format"),
        ({"type_names": {"spatem": "a/b"}}, "type_names.spatem"),
        ({"type_names": {"cam": "cam"}}, "type_names.cam"),
        ({"type_names": {"spatem": "mapem"}}, "type_names"),
        ({"ca_file": str(tmp_path / "missing.pem")}, "ca_file"),
        ({"password_file": str(tmp_path)}, "password_file"),
        ({"subscribe": ["srem", "cam"]}, "subscribe"),
        ({"expiry_s": {"spatem": -1}}, "expiry_s.spatem"),
        ({"quadkey_depth": 40}, "quadkey_depth"),
        ({"source": "a+b"}, "source"),
        ({"prefix": "x/#"}, "prefix"),
        ({"backoff_initial": 60, "backoff_max": 1}, "backoff_initial"),
        ({"colour": "red"}, "colour"),
    ]:
        with pytest.raises(ConfigError, match=rf"^mqtt\.{field}[: ]"):
            MqttConfig.from_dict({**pos, **data}, prefix="mqtt.")
    with pytest.raises(ConfigError, match=r"^latitude/longitude"):
        MqttConfig().validate()
    assert MqttConfig(**pos).source_id.startswith("rsu_")
