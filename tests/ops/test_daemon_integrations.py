"""The field integrations inside a real daemon: a MAP file drives MAPEMs, a 10 Hz controller feed over
UDP drives SPATEMs until it stops (then the watchdog stops them), and an NTRIP mountpoint served by
a real caster process drives RTCMEMs — all checked signed and decoded on the multicast group."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from rsu import catalog
from rsu.transports import gn
from tests.integrations.support import all_red_feed
from tests.ops.daemonproc import EXAMPLES, MulticastReceiver, RsuDaemon, example, group_and_port
from tests.ops.test_daemon_e2e import ETHERNET, open_frame
from tests.transports.conftest import free_udp_port

CASTER = Path(__file__).resolve().parent.parent / "integrations" / "caster.py"


class Caster:
    """tests/integrations/caster.py as a subprocess; its JSON-line events collected by a thread."""

    def __init__(self, tmp: Path):
        self.proc = subprocess.Popen(
            [sys.executable, str(CASTER), "--mount", "BORDEAUX", "--user", "rsu", "--password", "s3cret-marker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.events: list[dict] = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.port = self.wait("listening")["port"]

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self.cond:
                self.events.append(json.loads(line))
                self.cond.notify_all()

    def wait(self, kind: str, timeout: float = 10.0) -> dict:
        with self.cond:
            ok = self.cond.wait_for(lambda: any(e["event"] == kind for e in self.events), timeout)
            assert ok, f"caster event {kind!r} not seen: {self.events}"
            return next(e for e in self.events if e["event"] == kind)

    def send(self, data: bytes) -> None:
        self.proc.stdin.write(f"send {data.hex()}\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(5)
        except (BrokenPipeError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(5)


def kinds_in(frames: list[bytes]) -> list[str]:
    return [catalog.BY_BTP_PORT[gn.parse_packet(f[ETHERNET:]).btp_port].name for f in frames]


def test_map_file_controller_feed_and_ntrip_drive_the_air(tmp_path):
    group, port = group_and_port()
    maps = tmp_path / "maps"
    maps.mkdir()
    shutil.copy(EXAMPLES / "mapem-4arm-intersection.json", maps / "1201.json")
    password = tmp_path / "ntrip.pass"
    password.write_text("s3cret-marker\n")
    password.chmod(0o600)
    caster = Caster(tmp_path)
    feed_port = free_udp_port()
    integrations = {
        "map_files": {"intersections": {1201: str(maps / "1201.json")}, "poll_interval_s": 0.5},
        "controller": {
            "format": "json",
            "host": "127.0.0.1",
            "port": feed_port,
            "watchdog_timeout_s": 1.0,
            "stale_behaviour": "stop",
        },
        "ntrip": {
            "host": "127.0.0.1",
            "port": caster.port,
            "mountpoint": "BORDEAUX",
            "username": "rsu",
            "password_file": str(password),
            "version": 2,
            "flush_gap_s": 0.05,
        },
    }
    daemon = RsuDaemon(tmp_path, group=group, port=port, extra={"integrations": integrations}).start()
    rx = MulticastReceiver(group, port)
    try:
        # 1. the MAP file is on the air as a MAPEM, revision as written
        frames = rx.frames(lambda got: "mapem" in kinds_in(got))
        mapem = next(f for f in frames if kinds_in([f]) == ["mapem"])
        _, result = open_frame(mapem, daemon.pki_dir)
        assert result.ok and result.pdu.value["map"]["intersections"][0]["revision"] == 3

        # 2. a 10 Hz controller feed drives SPATEMs (one per update, at most 10 Hz per intersection)
        feed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        start = time.time()
        for i in range(10):
            t = start + i * 0.1
            feed.sendto(json.dumps(all_red_feed(t)).encode(), ("127.0.0.1", feed_port))
            time.sleep(max(0.0, t + 0.1 - time.time()))
        feed.close()
        stopped_at = time.time()
        frames = rx.frames(lambda got: kinds_in(got).count("spatem") >= 8)
        spatems = [open_frame(f, daemon.pki_dir)[1] for f in frames if kinds_in([f]) == ["spatem"]]
        assert all(r.ok for r in spatems)
        ix = spatems[-1].pdu.value["spat"]["intersections"][0]
        assert ix["id"]["id"] == 1201 and ix["revision"] == 3
        assert sorted(s["signalGroup"] for s in ix["states"]) == list(range(1, 13))
        assert {s["state-time-speed"][0]["eventState"] for s in ix["states"]} == {"stop-And-Remain"}
        assert daemon.metric("rsu_controller_feed_age_seconds", intersection="1201") >= 0

        # 3. the feed stopped: after the watchdog (1 s) no SPATEM repeats the stale state
        quiet_from = stopped_at + 1.5
        later = rx.frames(lambda got: got and time.time() > quiet_from + 1.5, timeout=10)
        late_spatems = [f for f in later if kinds_in([f]) == ["spatem"]]
        assert len(late_spatems) <= 3, "SPATEMs kept coming after the feed stopped"
        assert daemon.metric("rsu_controller_feed_age_seconds", intersection="1201") >= 1.0

        # 4. NTRIP: frames from the mountpoint come out as an RTCMEM
        caster.wait("request")
        rtcm = [bytes.fromhex(m) for m in example("rtcmem-corrections.json")["rtcmc"]["msgs"]]
        caster.send(b"".join(rtcm))
        frames = rx.frames(lambda got: "rtcmem" in kinds_in(got))
        rtcmem = next(f for f in frames if kinds_in([f]) == ["rtcmem"])
        _, result = open_frame(rtcmem, daemon.pki_dir)
        assert result.ok and result.pdu.value["rtcmc"]["msgs"] == rtcm
        status = daemon.get("/v1/status")[1]["integrations"]
        assert status["ntrip"] is not None and status["map_files"] is not None
        assert "s3cret-marker" not in daemon.log()  # the NTRIP password never reaches the log
    finally:
        rx.close()
        code = daemon.stop()
        caster.close()
    assert code == 0, daemon.log()
