"""The NTRIP client against a real caster: RTKLIB's str2str (Debian package rtklib) serving a mountpoint.

The test is the base station: it writes RTCM 3 frames (good and corrupted) into str2str's TCP input,
str2str serves them on its NTRIP caster port, and the client's frames must come out as RTCMEMs. The
caster process is then killed and restarted (a dropped connection): the client reconnects by itself.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from integrations.support import Recording, example, wait_for
from rsu.clock import SystemClock
from rsu.integrations.config import NtripConfig
from rsu.integrations.ntrip_io import NtripClient
from rsu.integrations.rtcm import frame
from tests.netutil import free_tcp_port

REAL = [bytes.fromhex(h) for h in example("rtcmem")["rtcmc"]["msgs"]]


class Str2str:
    """str2str -in tcpsvr://:IN -out ntripc://rsu:secret@:OUT/RTCM3, and the base-station connection to IN."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.in_port, self.out_port = free_tcp_port(), free_tcp_port()
        self.proc: asyncio.subprocess.Process | None = None
        self.source: asyncio.StreamWriter | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            self.binary,
            "-in",
            f"tcpsvr://:{self.in_port}",
            "-out",
            f"ntripc://rsu:secret@:{self.out_port}/RTCM3",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        loop = asyncio.get_running_loop()
        end = loop.time() + 10
        while True:  # bounded: until str2str accepts its base station
            try:
                _, self.source = await asyncio.open_connection("127.0.0.1", self.in_port)
                break
            except OSError:
                if loop.time() > end or self.proc.returncode is not None:
                    raise AssertionError("str2str did not start") from None
                await asyncio.sleep(0.05)

    async def send(self, data: bytes) -> None:
        self.source.write(data)
        await self.source.drain()

    async def stop(self) -> None:
        if self.source is not None:
            self.source.close()
            self.source = None
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


@pytest.fixture
async def rtklib(str2str):
    caster = Str2str(str2str)
    await caster.start()
    yield caster
    await caster.stop()


def client_for(caster: Str2str, services, version: int, password_file) -> NtripClient:
    cfg = NtripConfig.from_dict(
        {
            "host": "127.0.0.1",
            "port": caster.out_port,
            "mountpoint": "RTCM3",
            "username": "rsu",
            "password_file": password_file(),
            "version": version,
            "gga": True,
            "latitude": 44.837592,
            "longitude": -0.579431,
            "backoff_initial_s": 0.1,
            "backoff_max_s": 0.3,
            "flush_gap_s": 0.05,
            "max_batch_age_s": 0.5,
        }
    )
    return NtripClient(cfg, services, clock=services.layer.clock)


def on_air(services, stream: str = "ntrip") -> list[bytes]:
    entry = services.layer.get("gpc", stream)
    return services.layer.codec.decode(bytes.fromhex(entry["pdus_hex"][0])).value["rtcmc"]["msgs"]


def published(services) -> list[bytes]:
    """Every frame handed to GPC, in order, whatever batches str2str's relay cycles made."""
    return [
        bytes.fromhex(h)
        for c in services.calls
        if c[1] == "gpc" and c[0] in ("trigger", "update")
        for h in c[3]["rtcm"]
    ]


@pytest.mark.parametrize("version", [1, 2])
async def test_mountpoint_drives_rtcmems_corrupted_frames_dropped(rtklib, make_layer, password_file, version):
    services = Recording(make_layer(SystemClock()))
    client = client_for(rtklib, services, version, password_file)
    await client.start()
    try:
        await wait_for(lambda: client.connected, event=client.state_changed, timeout=10)
        assert client.status()["connected"] is True
        bad = bytearray(REAL[1])
        bad[100] ^= 0x01
        await rtklib.send(REAL[0] + bytes(bad) + REAL[1])
        await wait_for(lambda: len(published(services)) >= 2, event=services.changed, timeout=5)
        assert published(services) == [REAL[0], REAL[1]]
        assert on_air(services)[-1] == REAL[1]
        assert client.counters.dropped("rtcm-crc-mismatch") == 1
    finally:
        await client.stop()


async def test_caster_restart_is_a_dropped_connection_the_client_recovers(rtklib, make_layer, password_file):
    services = Recording(make_layer(SystemClock()))
    client = client_for(rtklib, services, 1, password_file)
    await client.start()
    try:
        await wait_for(lambda: client.connected, event=client.state_changed, timeout=10)
        await rtklib.send(REAL[0])
        await wait_for(lambda: published(services) == [REAL[0]], event=services.changed, timeout=5)
        await rtklib.stop()  # the caster dies: the connection drops
        await wait_for(lambda: not client.connected, event=client.state_changed, timeout=5)
        assert client.counters.dropped("ntrip-closed") == 1
        await rtklib.start()  # ... and comes back on the same port
        await wait_for(lambda: client.connected, event=client.state_changed, timeout=10)
        fresh = frame(bytes([0x3F, 0x00]) + bytes(range(1, 30)))  # a 1008 message
        await rtklib.send(fresh + REAL[1])
        await wait_for(lambda: published(services) == [REAL[0], fresh, REAL[1]], event=services.changed, timeout=5)
        assert on_air(services)[-1] == REAL[1]
        assert client.counters.get("connections") >= 2 and client.counters.get("reconnects") >= 1
    finally:
        with contextlib.suppress(Exception):
            await client.stop()
