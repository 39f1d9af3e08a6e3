"""The real daemon under a stand-in for systemd: ``rsu run`` in a subprocess with ``NOTIFY_SOCKET`` on a
unix datagram socket the test binds, ``WATCHDOG_USEC`` and ``WATCHDOG_PID`` set as systemd sets them.

READY=1 (with a STATUS naming where it serves) once the API answers; WATCHDOG=1 keepalives within
every watchdog period; SIGHUP gives RELOADING=1 + MONOTONIC_USEC, then READY=1 with a STATUS saying
what happened (applied, or rejected with the errors in the log and the daemon still running on the old
configuration); SIGTERM gives STOPPING=1 and exit code 0. Every wait is bounded by a socket timeout."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.ops.daemonproc import example
from tests.transports.conftest import free_udp_port, random_group

WATCHDOG_USEC = 400_000


def monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class NotifySocket:
    """What systemd's notify socket receives: (monotonic time, message) in arrival order."""

    def __init__(self) -> None:
        # a short path like /run/systemd/notify (sun_path is limited to 108 bytes)
        self.dir = Path(tempfile.mkdtemp(prefix="rsu-notify-"))
        self.path = str(self.dir / "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.received: list[tuple[float, str]] = []

    def expect(self, predicate, timeout: float = 10.0) -> str:
        """The next message (WATCHDOG=1 keepalives are recorded and skipped) that ``predicate`` accepts;
        any other non-keepalive message before it fails the test."""
        deadline = time.monotonic() + timeout
        while True:
            message = self._next(deadline)
            if message == "WATCHDOG=1":
                continue
            assert predicate(message), f"unexpected notification {message!r}"
            return message

    def keepalives(self, count: int, timeout: float = 10.0) -> list[float]:
        """Arrival times of the next ``count`` keepalives (other messages fail the test)."""
        deadline = time.monotonic() + timeout
        times = []
        while len(times) < count:
            message = self._next(deadline)
            assert message == "WATCHDOG=1", f"unexpected notification {message!r}"
            times.append(self.received[-1][0])
        return times

    def _next(self, deadline: float) -> str:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no notification in time; received so far: {[m for _, m in self.received]}")
        self.sock.settimeout(left)
        data = self.sock.recv(4096)  # socket.timeout (an OSError) ends the test on a silent daemon
        message = data.decode()
        self.received.append((time.monotonic(), message))
        return message

    def close(self) -> None:
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def fields(message: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in message.splitlines())


@pytest.fixture
def notify():
    n = NotifySocket()
    yield n
    n.close()


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
        return json.load(resp)


def test_ready_watchdog_reload_and_stop_as_systemd_sees_them(tmp_path, notify):
    config = {
        "state_dir": str(tmp_path / "state"),
        "api": {"port": 0},
        "logging": {"level": "INFO"},
        "transports": [
            {"type": "gn-udp", "name": "gn", "group": random_group(), "port": free_udp_port(), "interface": "lo"}
        ],
    }
    path = tmp_path / "rsu.yaml"
    path.write_text(yaml.safe_dump(config))
    log_path = tmp_path / "rsu.log"
    env = {**os.environ, "NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    env.pop("JOURNAL_STREAM", None)
    # systemd sets WATCHDOG_PID to the main process: a shell that sets it to its own pid, then execs rsu
    cmd = ["/bin/sh", "-c", 'WATCHDOG_PID=$$ exec "$0" "$@"', sys.executable, "-m", "rsu", "run", "--config", str(path)]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
    try:
        # READY=1 once serving, with a STATUS naming the API address; the API answers at that moment
        ready = fields(notify.expect(lambda m: m.startswith("READY=1"), timeout=30))
        m = re.fullmatch(r"serving on 127\.0\.0\.1:(\d+)", ready.get("STATUS", ""))
        assert m, ready
        url = f"http://127.0.0.1:{m.group(1)}"
        assert get_json(url + "/v1/health")["status"] == "ok"

        # keepalives from the event loop, each within the watchdog period of the previous one
        times = notify.keepalives(6)
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert max(gaps) < WATCHDOG_USEC / 1e6, gaps

        # SIGHUP with a valid change: RELOADING=1 + MONOTONIC_USEC, then READY=1 "configuration reloaded"
        path.write_text(yaml.safe_dump({**config, "logging": {"level": "DEBUG"}}))
        before = monotonic_usec()
        proc.send_signal(signal.SIGHUP)
        reloading = fields(notify.expect(lambda m: m.startswith("RELOADING=1")))
        assert before <= int(reloading["MONOTONIC_USEC"]) <= monotonic_usec()
        assert fields(notify.expect(lambda m: m.startswith("READY=1")))["STATUS"] == "configuration reloaded"

        # SIGHUP with an invalid file: rejected, errors logged, the daemon keeps running on the old one
        path.write_text(yaml.safe_dump({**config, "api": {"prot": 8301}, "station": {"id": -1}}))
        proc.send_signal(signal.SIGHUP)
        notify.expect(lambda m: m.startswith("RELOADING=1\nMONOTONIC_USEC="))
        status = fields(notify.expect(lambda m: m.startswith("READY=1")))["STATUS"]
        assert "rejected" in status and "previous" in status, status
        notify.keepalives(3)  # the loop still runs
        assert proc.poll() is None
        body = get_json(url + "/v1/status")  # same port: the API was not restarted
        assert body["reloads"]["ok"] == 1 and body["reloads"]["rejected"] == 1
        assert "api.prot" in body["reloads"]["last_error"]

        # SIGTERM: STOPPING=1, exit code 0 within a few seconds
        proc.send_signal(signal.SIGTERM)
        notify.expect(lambda m: m == "STOPPING=1")
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    log = log_path.read_text(errors="replace")
    assert "Traceback" not in log, log
    # the rejected reload named every error with its path, one line each
    assert re.search(r"ERROR rsu\.daemon: reload rejected: .*: api\.prot: unknown setting", log), log
    assert re.search(
        r"ERROR rsu\.daemon: reload rejected: .*: station\.id: expected a number >= 0 and <= 4294967295, found -1", log
    )
    assert "configuration reloaded" in log and log.rstrip().endswith("stopped")
    # nothing after STOPPING=1 (no READY after stop, no stray keepalive claims a live daemon)
    messages = [m for _, m in notify.received]
    assert messages[-1] == "STOPPING=1", messages[-5:]


def test_no_watchdog_for_another_pid(tmp_path, notify):
    """WATCHDOG_PID naming another process (a child inherited the env): no keepalives from us."""
    config = {
        "state_dir": str(tmp_path / "state"),
        "api": {"port": 0},
        "transports": [
            {"type": "gn-udp", "name": "gn", "group": random_group(), "port": free_udp_port(), "interface": "lo"}
        ],
    }
    path = tmp_path / "rsu.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "100000", "WATCHDOG_PID": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rsu", "run", "--config", str(path)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        notify.expect(lambda m: m.startswith("READY=1"), timeout=30)
        # 0.5 s = 10 watchdog half-periods: any keepalive would have arrived
        with pytest.raises(OSError):  # socket.timeout
            notify._next(time.monotonic() + 0.5)
        proc.send_signal(signal.SIGTERM)
        assert notify.expect(lambda m: True) == "STOPPING=1"
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert "WATCHDOG=1" not in [m for _, m in notify.received]


def test_start_failure_sends_no_ready_and_exits_1_with_one_line(tmp_path, notify):
    """The API port is taken: systemd must see the start fail (no READY=1, exit code 1 so Restart=on-failure
    retries), and the journal says why in terms of the configuration, not with a traceback."""
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    config = {
        "state_dir": str(tmp_path / "state"),
        "api": {"port": busy.getsockname()[1]},
        "transports": [
            {"type": "gn-udp", "name": "gn", "group": random_group(), "port": free_udp_port(), "interface": "lo"}
        ],
    }
    path = tmp_path / "rsu.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "NOTIFY_SOCKET": notify.path}
    try:
        r = subprocess.run(
            [sys.executable, "-m", "rsu", "run", "--config", str(path)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        busy.close()
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    failure = [line for line in r.stderr.splitlines() if "cannot start" in line]
    assert len(failure) == 1, r.stderr
    # found before starting, worded as a configuration error (field path, what is wrong)
    assert f"  api.port: TCP 127.0.0.1:{config['api']['port']} is already in use" in r.stderr, r.stderr
    notify.sock.setblocking(False)  # the process has exited: whatever it sent is queued
    sent = []
    while True:
        try:
            sent.append(notify.sock.recv(4096).decode())
        except BlockingIOError:
            break
    assert not any(m.startswith("READY=1") or "\nREADY=1" in m for m in sent), sent


async def test_stop_is_not_lost_when_the_scheduler_is_being_woken(tmp_path):
    """SIGTERM landing while the scheduler is being woken (a request, a restored entry): on Python 3.11
    ``asyncio.wait_for`` swallows a cancellation that arrives as its inner wait completes, which left the
    scheduler sending forever and the stop hanging until systemd's SIGKILL. Deterministic in-process."""
    from rsu.ops import config as cfgmod
    from rsu.ops.daemon import Daemon
    from rsu.ops.systemd import Notifier

    config = cfgmod.parse(
        {
            "state_dir": str(tmp_path / "state"),
            "api": {"port": 0},
            "transports": [
                {"type": "gn-udp", "name": "gn", "group": random_group(), "port": free_udp_port(), "interface": "lo"}
            ],
        }
    )
    d = Daemon(config, notifier=Notifier({}))
    await d.start()
    try:
        d.layer.trigger("rlt", {"payload": example("mapem-4arm-intersection.json")})  # a repetition deadline
        await asyncio.sleep(0.05)  # the scheduler is waiting for its next deadline (1 s) or a wake-up
        d._wake.set()  # woken ...
        await asyncio.sleep(0)  # ... its wait completes in this iteration ...
        t0 = time.monotonic()
        await asyncio.wait_for(d.stop(), 5)  # ... and the stop cancels it now: it must stop at once
        assert time.monotonic() - t0 < 2, "the scheduler ignored its cancellation; stop() hung"
    finally:
        for task in d._tasks:
            task.cancel()
    assert d._tasks == [] and d._runner is None
