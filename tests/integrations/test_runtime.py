"""The Integrations object the daemon wires in: config section -> start (MAP first), UDP feed, NTRIP, reload,
status, HTTP routes, and the real Prometheus metrics (feed age gauge, drops by reason)."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from integrations.support import all_red_feed, example, wait_for
from rsu.clock import SystemClock
from rsu.integrations.config import ConfigError, IntegrationsConfig
from rsu.integrations.rtcm import frame
from rsu.integrations.runtime import Integrations
from rsu.ops.metrics import Metrics


async def test_integrations_end_to_end(tmp_path, make_layer, caster, password_file):
    map_file = tmp_path / "1201.json"
    map_file.write_text(json.dumps(example("mapem")))
    config = IntegrationsConfig.from_dict(
        {
            "controller": {"host": "127.0.0.1", "port": 0, "watchdog_timeout_s": 5.0},
            "map_files": {"intersections": {"1201": str(map_file)}, "poll_interval_s": 0.05},
            "ntrip": {
                "host": "127.0.0.1",
                "port": caster.port,
                "mountpoint": "RTCM3",
                "username": "rsu",
                "password_file": password_file(),
                "flush_gap_s": 0.05,
                "backoff_initial_s": 0.05,
                "latitude": 44.8376,
                "longitude": -0.5794,
            },
        }
    )
    layer = make_layer(SystemClock())
    metrics = Metrics()
    integrations = Integrations(
        config,
        layer,
        clock=layer.clock,
        drops=metrics,
        on_feed_age=lambda ix, age: metrics.feed_age.labels(ix).set(age),
    )
    await integrations.start()
    try:
        assert [e["id"] for e in layer.list("rlt")] == ["1201"]  # the MAP is there before the first SPATEM
        results: asyncio.Queue = asyncio.Queue()
        integrations.controller_runner.on_result = results.put_nowait
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(json.dumps(all_red_feed(layer.clock.now())).encode(), integrations.controller_runner.address)
            s.sendto(b"\x00", integrations.controller_runner.address)
            ok, bad = [await asyncio.wait_for(results.get(), 2) for _ in range(2)]
        assert ok.accepted and bad.reason == "malformed-json"
        assert [t.service for t in layer.due() if t.service == "tlm"] == ["tlm"]

        await caster.wait("request")
        await wait_for(lambda: integrations.ntrip.connected, event=integrations.ntrip.state_changed)
        await caster.command(f"send {frame(bytes([0x3E, 0xD0]) + bytes(17)).hex()}")
        await wait_for(lambda: layer.list("gpc"), event=integrations.ntrip.state_changed)
        [gpc] = [t for t in layer.due() if t.service == "gpc"]
        assert gpc.params.destination is not None  # circle around the RSU position

        assert integrations.reload() == {"1201": {"action": "unchanged", "revisions": {"1201": 3}, "error": None}}
        status = integrations.status()
        assert status["controller"]["intersections"]["1201"]["state"] == "live"
        assert status["map_files"]["files"]["1201"]["revisions"] == {"1201": 3}
        assert status["ntrip"]["connected"] and status["ntrip"]["streams"] == ["ntrip"]
        paths = sorted(r.path for r in integrations.routes())
        assert paths == ["/v1/integrations/controller", "/v1/integrations/controller/feed", "/v1/integrations/status"]
        text = metrics.exposition().decode()
        assert 'rsu_controller_feed_age_seconds{intersection="1201"}' in text
        assert 'rsu_messages_dropped_total{reason="malformed-json",transport="controller"} 1.0' in text
    finally:
        await integrations.stop()
    assert layer.list("gpc") == []  # NTRIP stopped: its RTCMEM too


def test_sections_are_optional_and_errors_name_the_path():
    empty = IntegrationsConfig.from_dict({})
    assert (empty.controller, empty.map_files, empty.ntrip) == (None, None, None)
    with pytest.raises(ConfigError) as e:
        IntegrationsConfig.from_dict({"controller": {"format": "xml"}})
    assert str(e.value).startswith("integrations.controller.format: 'xml'")
    with pytest.raises(ConfigError) as e:
        IntegrationsConfig.from_dict({"ntrp": {}})
    assert str(e.value).startswith("integrations.ntrp: unknown option")
    with pytest.raises(ConfigError) as e:
        IntegrationsConfig.from_dict({"controller": []})
    assert "integrations.controller: expected a mapping" in str(e.value)


async def test_start_failure_stops_what_started(tmp_path, make_layer):
    map_file = tmp_path / "1201.json"
    map_file.write_text(json.dumps(example("mapem")))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        config = IntegrationsConfig.from_dict(
            {
                "map_files": {"intersections": {"1201": str(map_file)}},
                "controller": {"host": "127.0.0.1", "port": taken.getsockname()[1]},
            }
        )
        layer = make_layer(SystemClock())
        integrations = Integrations(config, layer, clock=layer.clock)
        with pytest.raises(OSError):
            await integrations.start()
    assert integrations.map_poller._task is None  # the MAP poller that had started is stopped again


async def test_unreadable_password_file_is_a_named_ntrip_error(tmp_path, make_layer):
    secret = tmp_path / "ntrip.pass"
    secret.write_text("pw\n")
    config = IntegrationsConfig.from_dict(
        {
            "ntrip": {
                "host": "127.0.0.1",
                "port": 9,
                "mountpoint": "M",
                "username": "u",
                "password_file": str(secret),
                "backoff_initial_s": 0.05,
            }
        }
    )
    secret.unlink()  # rotated away after start-up
    layer = make_layer(SystemClock())
    integrations = Integrations(config, layer, clock=layer.clock)
    await integrations.start()
    try:
        ntrip = integrations.ntrip
        await wait_for(lambda: ntrip.counters.dropped("ntrip-password-file") >= 1, event=ntrip.state_changed)
        assert "password_file: cannot read" in ntrip.status()["last_error"]
    finally:
        await integrations.stop()
