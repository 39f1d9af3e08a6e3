"""chrony against a real chronyd: Debian's chrony package, run with -x (it never touches the system clock)
on a command socket of the test's own. With ``local stratum 8`` it is synchronized to its local reference,
without it not at all; the monitor reads it through chronyc and chrony's verdict wins over the kernel's.

chronyc/chronyd come from the host when installed; otherwise the package is fetched with ``apt-get
download`` and unpacked into the test's directory, not installed: an installed chrony would put chronyc
on the PATH of every daemon on the host, and its service would be started where init allows it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from rsu.clock import ManualClock
from rsu.health.clock import chrony_command, combine, read_kernel
from rsu.health.config import ClockSection
from rsu.health.monitor import HealthMonitor, read_chrony
from rsu.ops.metrics import Metrics


def _unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def chrony_bin(tmp_path_factory) -> Path:
    """A directory holding chronyd and chronyc."""
    chronyd, chronyc = shutil.which("chronyd") or "/usr/sbin/chronyd", shutil.which("chronyc")
    if chronyc and Path(chronyd).exists():
        out = tmp_path_factory.mktemp("chrony-host")
        for b in (chronyd, chronyc):
            (out / Path(b).name).symlink_to(b)
        return out
    work = tmp_path_factory.mktemp("chrony-deb")
    if not shutil.which("apt-get"):
        _unavailable("chrony is not installed and there is no apt-get to fetch it")
    r = subprocess.run(["apt-get", "download", "chrony"], cwd=work, capture_output=True, timeout=300, check=False)
    debs = list(work.glob("chrony_*.deb"))
    if r.returncode != 0 or not debs:
        _unavailable(f"apt-get download chrony failed: {r.stderr.decode(errors='replace').strip()[-300:]}")
    subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(work / "root")], check=True, timeout=60)
    out = work / "bin"
    out.mkdir()
    for b in (work / "root" / "usr" / "sbin" / "chronyd", work / "root" / "usr" / "bin" / "chronyc"):
        (out / b.name).symlink_to(b)
    return out


class Chronyd:
    def __init__(self, bindir: Path, workdir: Path, *, local: bool):
        run = workdir / "run"
        run.mkdir(mode=0o700, parents=True)  # chronyd refuses a socket directory others can write
        self.socket = run / "chronyd.sock"
        conf = workdir / "chrony.conf"
        conf.write_text(
            ("local stratum 8\n" if local else "") + f"bindcmdaddress {self.socket}\ncmdport 0\n"
            f"port 0\npidfile {run / 'chronyd.pid'}\ndriftfile {run / 'drift'}\n"
        )
        self.log = workdir / "chronyd.log"
        import pwd

        user = pwd.getpwuid(os.geteuid()).pw_name
        self.proc = subprocess.Popen(
            [str(bindir / "chronyd"), "-x", "-d", "-u", user, "-f", str(conf)],
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while not self.socket.exists():  # bounded: chronyd creates its command socket when it is up
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"chronyd did not start: {self.log.read_text(errors='replace')}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def chronyd_factory(chrony_bin, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{chrony_bin}{os.pathsep}{os.environ.get('PATH', '')}")  # the monitor finds chronyc
    started = []

    def start(local: bool) -> Chronyd:
        d = Chronyd(chrony_bin, tmp_path / f"chronyd-{len(started)}", local=local)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()


async def test_a_chronyd_on_its_local_reference_is_synchronized_and_wins_over_the_kernel(chronyd_factory):
    d = chronyd_factory(local=True)
    tracking = await read_chrony(chrony_command(str(d.socket)))
    assert (tracking.stratum, tracking.leap_status, tracking.reference) == (8, "Normal", "7F7F0101")
    assert tracking.synchronized
    kernel = read_kernel()
    reading = combine(kernel, tracking)
    assert reading.source == "chrony" and reading.synchronized  # whatever STA_UNSYNC says on this host
    assert reading.error_s is not None and reading.error_s >= 0 and reading.offset_s is not None


async def test_a_chronyd_without_a_source_is_not_synchronized(chronyd_factory):
    d = chronyd_factory(local=False)
    tracking = await read_chrony(chrony_command(str(d.socket)))
    assert tracking.leap_status == "Not synchronised" and not tracking.synchronized
    assert not combine(read_kernel(), tracking).synchronized


async def test_the_monitor_reads_chrony_at_its_address(chronyd_factory):
    d = chronyd_factory(local=True)
    metrics = Metrics()
    monitor = HealthMonitor(
        ClockSection(sync_source="auto", chrony_address=str(d.socket), unsynchronized="stop"),
        clock=ManualClock(1_800_000_000),
        metrics=metrics,
    )
    await monitor.start()
    try:
        status = monitor.status()
        assert status["source"] == "chrony" and status["synchronized"], status
        assert "7F7F0101 stratum 8 Normal" in status["detail"]
        assert metrics.registry.get_sample_value("rsu_clock_source", {"source": "chrony"}) == 1.0
        assert metrics.registry.get_sample_value("rsu_clock_synchronized") == 1.0
        d.stop()  # chronyd gone: chronyc fails, the kernel decides again
        reading = await monitor.poll()
        assert reading.source == "kernel" and reading.synchronized == read_kernel().synchronized
    finally:
        await monitor.stop()
