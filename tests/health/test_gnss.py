"""gpsd: the sans-I/O reader of its JSON protocol, then the asyncio client and a running daemon against a
real gpsd fed by gpsfake (Debian's gpsd-clients and gpsd) replaying tests/data/gnss/bordeaux-fix.nmea."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from rsu.clock import ManualClock, parse_iso8601
from rsu.health.gnss import MAX_LINE, GpsdClient, GpsdReader
from tests.conftest import REPO, run_rsu
from tests.netutil import free_tcp_port
from tests.ops.daemonproc import RsuDaemon, group_and_port

NMEA = REPO / "tests" / "data" / "gnss" / "bordeaux-fix.nmea"
LAT, LON, ALT_HAE = 44.837592, -0.579431, 121.5  # what the synthetic log encodes (make_nmea.py)

TPV_3D = {
    "class": "TPV",
    "device": "/dev/ttyACM0",
    "mode": 3,
    "time": "2026-11-21T10:00:05.000Z",
    "lat": LAT,
    "lon": LON,
    "altHAE": ALT_HAE,
    "alt": 71.4,
}


def lines(*objs) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objs)


# ------------------------------------------------------------------------------ the reader


def test_tpv_and_sky_in_any_chunking():
    data = lines(
        {"class": "VERSION", "release": "3.22"},
        TPV_3D,
        {"class": "SKY", "satellites": [{"PRN": 3, "used": True}, {"PRN": 7, "used": False}]},
    )
    whole, bytewise = GpsdReader(), GpsdReader()
    assert whole.feed(data, 100.0) == ["VERSION", "TPV", "SKY"]
    got = [k for i in range(len(data)) for k in bytewise.feed(data[i : i + 1], 100.0)]
    assert got == ["VERSION", "TPV", "SKY"]
    for s in (whole.state, bytewise.state):
        assert (s.mode, s.latitude, s.longitude, s.altitude_m) == (3, LAT, LON, ALT_HAE)
        assert s.time == parse_iso8601("2026-11-21T10:00:05Z").timestamp()
        assert (s.satellites_used, s.satellites_seen, s.version, s.tpv_at) == (1, 2, "3.22", 100.0)


def test_losing_the_fix_forgets_the_position_and_2d_has_no_altitude():
    r = GpsdReader()
    r.feed(lines(TPV_3D), 1.0)
    r.feed(lines({**TPV_3D, "mode": 2}), 2.0)
    assert (r.state.mode, r.state.latitude, r.state.altitude_m) == (2, LAT, None)
    r.feed(lines({"class": "TPV", "mode": 1, "time": "2026-11-21T10:00:07.000Z"}), 3.0)
    assert (r.state.mode, r.state.latitude, r.state.longitude) == (1, None, None)
    r.state.connected = True
    assert r.state.status(4.0)["fix"] == "no-fix" and r.state.status(4.0)["tpv_age_s"] == 1.0


def test_the_fix_mode_is_unknown_when_disconnected_or_silent():
    r = GpsdReader()
    r.feed(lines(TPV_3D), 100.0)
    assert r.state.current_mode(100.0) == 0  # not connected (a reader fed by hand)
    r.state.connected = True
    assert r.state.current_mode(105.0) == 3 and r.state.status(105.0)["fix"] == "3d"
    assert r.state.current_mode(110.5) == 0 and r.state.status(110.5)["fix"] == "unknown"  # silent for 10.5 s
    assert r.state.latitude == LAT  # the last position stays known (with its tpv_age_s)


def test_nsat_usat_win_over_the_list():
    r = GpsdReader()
    r.feed(lines({"class": "SKY", "nSat": 9, "uSat": 5, "satellites": [{"used": True}]}), 0.0)
    assert (r.state.satellites_used, r.state.satellites_seen) == (5, 9)


def test_bad_lines_are_counted_and_bounded():
    r = GpsdReader()
    bad = (
        b"not json\n"
        + b"[1, 2]\n"
        + b'{"no": "class"}\n'
        + b'{"class": "TPV", "mode": "3", "lat": "x"}\n'
        + b'{"class": "TPV", "mode": 3, "lat": 91.0, "lon": 0, "time": "yesterday"}\n'
    )
    assert r.feed(bad, 0.0) == ["TPV", "TPV"]
    assert r.state.bad_lines == 3
    assert r.state.mode == 3 and r.state.latitude is None and r.state.time is None  # out of range, unparsable
    r.feed(lines(TPV_3D, {"class": "TPV", "mode": 3, "lat": LAT, "lon": LON}), 0.0)
    assert r.state.time == parse_iso8601(TPV_3D["time"]).timestamp()  # a TPV without time keeps the last one
    # an endless line is dropped once it passes MAX_LINE, without keeping it, and the next line is read
    r.feed(b"x" * (MAX_LINE + 10), 0.0)
    assert len(r._buf) == 0 and r.state.bad_lines == 4
    r.feed(b"y" * 1000, 0.0)
    assert r.feed(b"tail\n" + lines({**TPV_3D, "mode": 2}), 0.0) == ["TPV"]
    assert r.state.bad_lines == 4 and r.state.mode == 2


# ------------------------------------------------------------------------------ a real gpsd


class GpsFake:
    """gpsfake (which starts a gpsd of its own on ``port``) replaying ``log`` in a loop."""

    def __init__(self, gpsfake: str, log: Path, workdir: Path):
        self.port = free_tcp_port()
        self.out = (workdir / "gpsfake.log").open("wb")
        env = {**os.environ, "PATH": f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"}  # gpsd lives in /usr/sbin
        env.pop("PYTHONPATH", None)  # gpsfake is Debian's python3 script with python3-gps, not our venv's
        self.proc = subprocess.Popen(
            [gpsfake, "-q", "-P", str(self.port), "-c", "0.05", str(log)],
            stdout=self.out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
            start_new_session=True,
        )
        self.log = workdir / "gpsfake.log"
        deadline = time.monotonic() + 30
        while True:  # bounded: gpsfake starts gpsd, then gpsd listens
            if self.proc.poll() is not None:
                raise RuntimeError(f"gpsfake exited {self.proc.returncode}: {self.log.read_text(errors='replace')}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"gpsd did not listen: {self.log.read_text(errors='replace')}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # gpsfake and the gpsd it started, both ours
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.out.close()


@pytest.fixture(scope="module")
def gpsfake(tmp_path_factory):
    from tests.transports.conftest import ensure_debian_tool

    binary = ensure_debian_tool("gpsfake", "gpsd-clients")
    ensure_debian_tool("gpsd", "gpsd")  # gpsfake runs the real daemon; gpsd-clients only suggests it
    fake = GpsFake(binary, NMEA, tmp_path_factory.mktemp("gpsfake"))
    yield fake
    fake.stop()


async def test_the_client_follows_gpsd_replaying_the_log(gpsfake):
    clock = ManualClock(1_800_000_000)
    client = GpsdClient("127.0.0.1", gpsfake.port, clock=clock)
    client.start()
    try:
        await asyncio.wait_for(client.connected.wait(), 20)

        async def fix_3d():
            while not (client.state.mode == 3 and client.state.satellites_used == 6 and client.state.time):
                await asyncio.sleep(0.05)

        await asyncio.wait_for(fix_3d(), 30)  # the log loops: the fix comes back within one pass
        s = client.state
        assert s.latitude == pytest.approx(LAT, abs=1e-7) and s.longitude == pytest.approx(LON, abs=1e-7)
        assert s.altitude_m == pytest.approx(ALT_HAE, abs=0.01)  # 71.4 m MSL + 50.1 m geoid separation
        assert s.satellites_seen == 8
        assert s.time is not None and time.gmtime(s.time)[:4] == (2026, 11, 21, 10)
        assert s.tpv_at == 1_800_000_000  # stamped with the injected clock
        assert s.version and s.version.startswith("3.")
        assert s.bad_lines == 0
    finally:
        await client.stop()
    assert not client.connected.is_set() or client._task is None


async def test_the_client_reconnects_when_gpsd_is_not_there_yet():
    port = free_tcp_port()
    client = GpsdClient("127.0.0.1", port, clock=ManualClock(), retry_s=0.05, max_retry_s=0.1)
    client.start()
    try:
        await asyncio.sleep(0.3)  # a few refused attempts
        assert client.connects == 0 and not client.state.connected

        async def serve(reader, writer):
            await reader.readline()  # the ?WATCH
            writer.write(lines(TPV_3D))
            await writer.drain()
            await asyncio.sleep(30)

        server = await asyncio.start_server(serve, "127.0.0.1", port)
        async with server:
            await asyncio.wait_for(client.connected.wait(), 10)

            async def tpv():
                while client.state.mode != 3:
                    await asyncio.sleep(0.02)

            await asyncio.wait_for(tpv(), 10)
            assert client.connects == 1 and client.state.latitude == LAT
    finally:
        await client.stop()


def test_a_daemon_with_gpsd_shows_the_fix_in_metrics_and_status(gpsfake, tmp_path):
    group, port = group_and_port()
    daemon = RsuDaemon(
        tmp_path,
        group=group,
        port=port,
        extra={"clock": {"gpsd": {"host": "127.0.0.1", "port": gpsfake.port}, "poll_interval": 0.5}},
    )
    daemon.start()
    try:
        deadline = time.monotonic() + 30
        while daemon.metric("rsu_gnss_satellites_used") != 6 or daemon.metric("rsu_gnss_fix_mode") != 3:
            assert time.monotonic() < deadline, daemon.log()[-2000:]
            time.sleep(0.2)
        assert daemon.metric("rsu_gnss_connected") == 1
        assert daemon.metric("rsu_gnss_latitude_degrees") == pytest.approx(LAT, abs=1e-7)
        assert daemon.metric("rsu_gnss_longitude_degrees") == pytest.approx(LON, abs=1e-7)
        code, status = daemon.get("/v1/status")
        gnss = status["clock"]["gnss"]
        assert code == 200 and gnss["connected"] and gnss["latitude"] == pytest.approx(LAT, abs=1e-7)
        cli = run_rsu("status", "--api", daemon.url)
        assert cli.returncode == 0, cli.stderr
        out = cli.stdout.decode()
        assert "gnss      connected" in out and "44.8375920, -0.5794310" in out
    finally:
        assert daemon.stop() == 0
