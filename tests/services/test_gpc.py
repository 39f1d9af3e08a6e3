"""GPC service (RTCMEM). No TS 103 191-2 GPC test purposes were found; these are named by what they check."""

from __future__ import annotations

import pytest

from rsu import catalog
from rsu.services.errors import ServiceError
from rsu.services.gpc import crc24q, rtcm3_problem
from services.support import by_service, decoded, example

FRAMES = example("rtcmem")["rtcmc"]["msgs"]


def rtcmems(layer, now=None):
    return by_service(layer.due(now), "gpc")


def test_GPC_GEN_MSGF_header_and_port(layer, codec):
    """RTCMEM: messageID 13, protocolVersion 1, BTP-B port 2013."""
    layer.trigger("gpc", {"payload": example("rtcmem")})
    [tx] = rtcmems(layer)
    h = decoded(codec, tx)["header"]
    assert (h["messageID"], h["protocolVersion"], tx.params.btp_port) == (13, 1, 2013)
    assert tx.kind is catalog.RTCMEM


def test_GPC_frames_from_a_feed_are_repeated_at_the_interval(layer, codec, clock):
    """Frames supplied by a feed become an RTCMEM repeated at the configured interval; new frames replace them."""
    answer = layer.trigger(
        "gpc", {"rtcm": FRAMES[:1], "stream": "ntrip-bordeaux", "dissemination": {"repetition_interval_s": 5}}
    )
    assert answer["id"] == "ntrip-bordeaux" and answer["identification"]["rtcmTypes"] == [1005]
    t0 = clock.now()
    times = []
    for _ in range(3):
        clock.set(layer.next_deadline())
        times += [clock.now() - t0 for _ in rtcmems(layer)]
    assert times == [0, 5, 10]
    first = decoded(codec, rtcmems(layer, t0 + 15)[0])["rtcmc"]
    clock.set(t0 + 16)
    layer.update("gpc", "ntrip-bordeaux", {"rtcm": FRAMES})
    [tx] = rtcmems(layer)
    rtcmc = decoded(codec, tx)["rtcmc"]
    assert tx.fresh and [m.hex() for m in rtcmc["msgs"]] == FRAMES
    assert rtcmc["msgCnt"] == (first["msgCnt"] + 1) % 128  # msgCnt changes with the content
    again = layer.update("gpc", "ntrip-bordeaux", {"rtcm": FRAMES})
    assert again["unchanged"] is True


def test_GPC_rejects_corrupted_rtcm_frames(layer):
    bad = bytearray(bytes.fromhex(FRAMES[0]))
    bad[10] ^= 0x01
    with pytest.raises(ServiceError) as e:
        layer.trigger("gpc", {"rtcm": [FRAMES[1], bad.hex()]})
    assert (e.value.path, e.value.reason) == ("rtcm[1]", "not an RTCM 3 frame: CRC-24Q mismatch")
    v = example("rtcmem")
    v["rtcmc"]["msgs"][0] = "aa" + FRAMES[0][2:]
    with pytest.raises(ServiceError) as e:
        layer.trigger("gpc", {"payload": v})
    assert e.value.path == "payload.rtcmc.msgs[0]" and "preamble" in e.value.reason
    with pytest.raises(ServiceError) as e:
        layer.trigger("gpc", {"rtcm": FRAMES * 3})
    assert e.value.path == "rtcm" and "6" in e.value.reason  # at most 5 frames in one RTCMEM
    assert layer.list("gpc") == []


def test_GPC_crc24q_known_answer():
    assert crc24q(b"") == 0
    assert crc24q(b"123456789") == 0xCDE703  # CRC-24Q check value
    assert rtcm3_problem(bytes.fromhex(FRAMES[1])) is None
