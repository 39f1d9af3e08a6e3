"""The NTRIP client against the test caster (a real process, tests/integrations/caster.py): NTRIP 2 chunked stream
and GGA upload, NTRIP 1, corrupted frames, a connection dropped mid-frame, refused credentials -> RTCMEMs."""

from __future__ import annotations

import base64

import pytest

from integrations.support import Recording, example, wait_for
from rsu.clock import SystemClock
from rsu.integrations.config import NtripConfig
from rsu.integrations.ntrip import nmea_checksum
from rsu.integrations.ntrip_io import NtripClient
from rsu.integrations.rtcm import frame

REAL = [bytes.fromhex(h) for h in example("rtcmem")["rtcmc"]["msgs"]]  # 1005 + 1077


def msg(number: int, size: int, fill: int) -> bytes:
    return frame(bytes([number >> 4, (number & 0x0F) << 4]) + bytes([fill]) * (size - 2))


def corrupt(f: bytes) -> bytes:
    b = bytearray(f)
    b[len(b) // 2] ^= 0x10
    return bytes(b)


@pytest.fixture
def services(make_layer):
    return Recording(make_layer(SystemClock()))


def client_for(caster, services, make_password, **overrides) -> NtripClient:
    cfg = {
        "host": "127.0.0.1",
        "port": caster.port,
        "mountpoint": "RTCM3",
        "username": "rsu",
        "password_file": make_password(),
        "version": 2,
        "latitude": 44.837592,
        "longitude": -0.579431,
        "altitude_m": 40.0,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.2,
        "flush_gap_s": 0.05,
        "max_batch_age_s": 0.5,
        "read_timeout_s": 5.0,
    }
    cfg.update(overrides)
    return NtripClient(NtripConfig.from_dict(cfg), services, clock=services.layer.clock)


def rtcmem_frames(services, stream: str = "ntrip") -> list[bytes]:
    """Frames of the stream's RTCMEM as it is now on the air (decoded from the services layer)."""
    entry = services.layer.get("gpc", stream)
    codec = services.layer.codec
    return codec.decode(bytes.fromhex(entry["pdus_hex"][0])).value["rtcmc"]["msgs"]


def published(services) -> list[list[str]]:
    return [c[3]["rtcm"] for c in services.calls if c[1] == "gpc" and c[0] in ("trigger", "update")]


async def test_v2_stream_with_gga_corrupted_frame_and_a_dropped_connection(caster, services, password_file):
    client = client_for(caster, services, password_file, gga=True, gga_interval_s=1.0)
    await client.start()
    try:
        request = await caster.wait("request")
        lines = request["lines"]
        assert lines[0] == "GET /RTCM3 HTTP/1.1" and "Ntrip-Version: Ntrip/2.0" in lines
        assert "Authorization: Basic " + base64.b64encode(b"rsu:secret").decode() in lines
        [gga] = [line for line in lines if line.startswith("Ntrip-GGA: ")]
        body, _, cs = gga[len("Ntrip-GGA: $") :].partition("*")
        assert body.startswith("GPGGA,") and ",4450.25552,N,00034.76586,W,1," in body
        assert int(cs, 16) == nmea_checksum(body)
        assert request["answer"] == "HTTP/1.1 200 OK"
        await wait_for(lambda: client.connected, event=client.state_changed)

        a, b, c = REAL[0], msg(1074, 200, 0x5A), REAL[1]
        await caster.command(f"send {(a + corrupt(b) + c).hex()}")  # two HTTP chunks, split mid-frame
        await wait_for(lambda: published(services), event=services.changed)
        assert rtcmem_frames(services) == [a, c]
        assert client.counters.dropped("rtcm-crc-mismatch") == 1

        upload = await caster.wait("upload", timeout=3)  # periodic GGA up the same connection
        assert upload["line"].startswith("$GPGGA,") and client.counters.get("gga-sent") >= 1

        await caster.command(f"send {b[: len(b) // 2].hex()}")  # half a frame ...
        await caster.wait("sent", 2)
        await caster.command("drop")  # ... and the caster goes away
        second = await caster.wait("request", 2)  # the client reconnects after its backoff
        assert second["answer"] == "HTTP/1.1 200 OK"
        await wait_for(lambda: client.connected, event=client.state_changed)
        await caster.command(f"send {(b + a).hex()}")
        await wait_for(lambda: len(published(services)) >= 2, event=services.changed)
        assert rtcmem_frames(services) == [b, a]  # the half frame never reached an RTCMEM
        counts = client.counters.snapshot()
        assert counts["counts"]["rtcm-partial-dropped"] == 1 and counts["counts"]["reconnects"] >= 1
        assert counts["dropped"]["ntrip-closed"] == 1
        status = client.status()
        assert status["connected"] and status["streams"] == ["ntrip"] and status["last_error"] is None
    finally:
        await client.stop()
    assert not client.connected
    assert services.layer.list("gpc") == []  # stopping the client stops its RTCMEM


async def test_v1_with_gga_in_the_request_body(caster, services, password_file):
    client = client_for(caster, services, password_file, version=1, gga=True)
    await client.start()
    try:
        request = await caster.wait("request")
        assert request["lines"][0] == "GET /RTCM3 HTTP/1.0" and not any("Ntrip-" in x for x in request["lines"])
        assert request["answer"] == "ICY 200 OK"
        upload = await caster.wait("upload")
        assert upload["line"].startswith("$GPGGA,")
        await wait_for(lambda: client.connected, event=client.state_changed)
        stream = REAL[1] + b"\x00\x00junk" + REAL[0]
        await caster.command(f"send {stream.hex()}")
        await wait_for(lambda: published(services), event=services.changed)
        assert rtcmem_frames(services) == [REAL[1], REAL[0]]
        assert client.counters.dropped("rtcm-resync") == 1
    finally:
        await client.stop()


@pytest.mark.parametrize("version", [1, 2])
async def test_refused_credentials_are_retried_with_backoff(caster, services, password_file, version):
    client = client_for(caster, services, password_file, password_file=password_file("wrong"), version=version)
    await client.start()
    try:
        await caster.wait("request", 3)  # keeps trying, spaced by the backoff
        await wait_for(lambda: client.counters.dropped("ntrip-unauthorized") >= 3, event=client.state_changed)
    finally:
        await client.stop()
    assert {e["answer"] for e in caster.of("request")} == {
        "HTTP/1.1 401 Unauthorized" if version == 2 else "HTTP/1.0 401 Unauthorized"
    }
    assert client.counters.dropped("ntrip-unauthorized") >= 3
    assert client.status()["last_error"].startswith("ntrip-unauthorized")
    assert not published(services)


async def test_unknown_mountpoint(caster, services, password_file):
    client = client_for(caster, services, password_file, mountpoint="NOPE", version=1)
    await client.start()
    try:
        await caster.wait("request")
        await wait_for(lambda: client.counters.dropped("ntrip-no-mountpoint") >= 1, event=client.state_changed)
    finally:
        await client.stop()
    assert caster.of("request")[0]["answer"] == "SOURCETABLE 200 OK"
