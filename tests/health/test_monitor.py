"""The health monitor as the daemon runs it: a first reading before anything is sent, the gate's verdict
going stale with the injected clock, warn counted in the metric, stop withholding, and a reload of the
clock: section (in-process daemon, real kernel state, real sockets)."""

from __future__ import annotations

from pathlib import Path

import yaml

from rsu import catalog
from rsu.clock import ManualClock
from rsu.health.clock import CLOCK_UNSYNCHRONIZED, read_kernel
from rsu.health.config import ClockSection
from rsu.health.monitor import HealthMonitor
from rsu.ops import config as cfgmod
from rsu.ops.daemon import Daemon
from rsu.ops.metrics import Metrics
from tests.transports.conftest import free_tcp_port, free_udp_port, random_group


def sample(metrics: Metrics, name: str, **labels) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def test_the_first_reading_is_the_kernels_and_goes_stale_without_polls():
    clock, metrics = ManualClock(1_800_000_000), Metrics()
    monitor = HealthMonitor(
        ClockSection(sync_source="kernel", unsynchronized="stop", poll_interval=5), clock=clock, metrics=metrics
    )
    await monitor.start()
    try:
        kernel = read_kernel()
        status = monitor.status()
        assert status["source"] == "kernel" and status["synchronized"] == kernel.synchronized
        assert status["error_s"] == kernel.maxerror_us / 1e6 and status["gnss"] is None
        assert sample(metrics, "rsu_clock_synchronized") == (1.0 if kernel.synchronized else 0.0)
        assert sample(metrics, "rsu_clock_source", source="kernel") == 1.0
        assert sample(metrics, "rsu_clock_source", source="chrony") == 0.0
        assert sample(metrics, "rsu_clock_error_seconds") == kernel.maxerror_us / 1e6
        expected = None if kernel.synchronized else CLOCK_UNSYNCHRONIZED
        assert monitor.gate.allows(catalog.SPATEM, clock.now()) == expected
        # the poll task sleeps on the real loop; on the manual clock the reading ages past 3 intervals + 5 s
        clock.advance(21)
        assert monitor.gate.allows(catalog.SPATEM, clock.now()) == CLOCK_UNSYNCHRONIZED
        assert monitor.gate.allows(catalog.MAPEM, clock.now()) is None
        monitor.refresh_gauges()
        assert sample(metrics, "rsu_clock_synchronized") == 0.0 and not monitor.status()["synchronized"]
    finally:
        await monitor.stop()


async def test_warn_counts_each_timed_message_and_a_reconfigure_switches_to_stop():
    clock, metrics = ManualClock(1_800_000_000), Metrics()
    monitor = HealthMonitor(ClockSection(sync_source="kernel"), clock=clock, metrics=metrics)
    await monitor.start()
    try:
        clock.advance(3600)  # stale: not synchronized, whatever the host says
        for _ in range(3):
            assert monitor.gate.allows(catalog.SPATEM, clock.now()) is None
        assert monitor.gate.allows(catalog.IVIM, clock.now()) is None
        assert sample(metrics, "rsu_clock_unsynchronized_sends_total", service="TLM", message="spatem") == 3
        assert sample(metrics, "rsu_clock_unsynchronized_sends_total", service="IVI", message="ivim") is None
        await monitor.reconfigure(
            ClockSection(sync_source="kernel", unsynchronized="stop", timed_messages=("spatem", "ivim"))
        )
        clock.advance(3600)
        assert monitor.gate.allows(catalog.IVIM, clock.now()) == CLOCK_UNSYNCHRONIZED
        assert monitor.status()["policy"] == "stop" and monitor.status()["timed_messages"] == ["ivim", "spatem"]
        assert sample(metrics, "rsu_clock_unsynchronized_sends_total", service="TLM", message="spatem") == 3
    finally:
        await monitor.stop()


async def test_the_daemon_reads_the_clock_and_a_reload_changes_the_policy(tmp_path: Path):
    config = {
        "state_dir": str(tmp_path / "state"),
        "api": {"port": free_tcp_port()},
        "logging": {"level": "ERROR"},
        "transports": [{"type": "gn-udp", "name": "gn", "group": random_group(), "port": free_udp_port()}],
        "clock": {"sync_source": "kernel"},
    }
    path = tmp_path / "rsu.yaml"
    path.write_text(yaml.safe_dump(config))
    d = Daemon(cfgmod.load(path), config_path=str(path))
    await d.start()
    try:
        assert d.health.polls >= 1 and d.health.gate.policy == "warn"
        status = d.status()["clock"]
        assert status["source"] == "kernel" and status["synchronized"] == read_kernel().synchronized
        config["clock"] = {"sync_source": "kernel", "unsynchronized": "stop", "max_error": "1ms"}
        path.write_text(yaml.safe_dump(config))
        assert await d.reload(), d.reloads
        status = d.status()["clock"]
        assert status["policy"] == "stop" and d.health.gate.policy == "stop"
        # a 1 ms bound: unsynchronized unless the host's kernel claims better
        assert status["synchronized"] == (read_kernel().synchronized and read_kernel().maxerror_us <= 1000)
        text = d.metrics.exposition().decode()
        assert "rsu_clock_synchronized " in text and 'rsu_clock_source{source="kernel"} 1.0' in text
    finally:
        await d.stop()


async def test_a_chronyc_that_cannot_run_or_answers_nonsense_is_a_read_error(tmp_path: Path):
    """read_chrony turns every failure of the subprocess into ClockReadError (the monitor then uses the kernel)."""
    import pytest

    from rsu.health.clock import ClockReadError
    from rsu.health.monitor import read_chrony

    broken = tmp_path / "chronyc-broken"
    broken.write_text("#!/nonexistent/interpreter\n")  # executable, but exec fails (ENOENT)
    broken.chmod(0o755)
    with pytest.raises(ClockReadError, match="could not be run"):
        await read_chrony((str(broken), "tracking"))
    nonsense = tmp_path / "chronyc-talks"
    nonsense.write_text("#!/bin/sh\necho '506 Cannot talk to daemon'\n")
    nonsense.chmod(0o755)
    with pytest.raises(ClockReadError, match="expected 14 comma-separated fields"):
        await read_chrony((str(nonsense), "tracking"))
    failing = tmp_path / "chronyc-fails"
    failing.write_text("#!/bin/sh\necho 'chronyc: no such host' >&2\nexit 1\n")
    failing.chmod(0o755)
    with pytest.raises(ClockReadError, match="exited with 1: chronyc: no such host"):
        await read_chrony((str(failing), "tracking"))
    with pytest.raises(ClockReadError, match="not found"):
        await read_chrony((str(tmp_path / "absent"), "tracking"))


async def test_under_stop_an_unsynchronized_clock_keeps_spatem_off_the_air_and_counts_it(tmp_path: Path):
    """The gate wired into the daemon's send pipeline: with chrony as the only source and no chronyd answering,
    the clock is not synchronized; a triggered SPATEM is skipped (clock-unsynchronized) and never sent, while
    a MAPEM (not timed) goes out."""
    import asyncio

    import pytest

    from tests.services.support import example

    config = {
        "state_dir": str(tmp_path / "state"),
        "api": {"port": free_tcp_port()},
        "logging": {"level": "ERROR"},
        "transports": [{"type": "gn-udp", "name": "gn", "group": random_group(), "port": free_udp_port()}],
        "clock": {"sync_source": "chrony", "unsynchronized": "stop", "chrony_address": "127.0.0.1"},
    }
    d = Daemon(cfgmod.parse(config))
    await d.start()
    try:
        if d.status()["clock"]["synchronized"]:
            pytest.skip("a chronyd on this host answers and says the clock is synchronized")
        d.layer.trigger("tlm", {"payload": example("spatem")})
        d.layer.trigger("rlt", {"payload": example("mapem")})
        for _ in range(100):
            await asyncio.sleep(0.05)
            if sample(d.metrics, "rsu_messages_sent_total", service="RLT", message="mapem", transport="gn"):
                break
        assert sample(d.metrics, "rsu_scheduled_sends_skipped_total", service="TLM", reason=CLOCK_UNSYNCHRONIZED) == 1
        assert not sample(d.metrics, "rsu_messages_sent_total", service="TLM", message="spatem", transport="gn")
        assert sample(d.metrics, "rsu_messages_sent_total", service="RLT", message="mapem", transport="gn") == 1
    finally:
        await d.stop()
