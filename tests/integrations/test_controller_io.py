"""The controller feed over real sockets: a 10 Hz JSON feed on UDP 127.0.0.1 drives SPATEMs through a daemon-like
loop, the watchdog stops them when the feed stops; TSCBM over UDP; the JSON feed over a real aiohttp server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket

import aiohttp
import pytest
from aiohttp import web

from integrations.support import PHASE_MAP, Recording, all_red_feed, example, tscbm_bytes, wait_for
from rsu import catalog
from rsu.clock import SystemClock, time_mark
from rsu.integrations.config import ControllerFeedConfig
from rsu.integrations.controller import ControllerFeed
from rsu.integrations.controller_io import ControllerRunner
from rsu.integrations.routes import feed_routes, status_routes
from rsu.services.timefmt import moy_to_posix


class Daemon:
    """The daemon's send loop, reduced: wait for the layer's next deadline or wakeup, collect due SPATEMs."""

    def __init__(self, layer) -> None:
        self.layer = layer
        self.spatems: list = []
        self.sent = asyncio.Event()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def __aenter__(self):
        self.layer.set_wakeup(self._wake.set)
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc):
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.layer.set_wakeup(None)

    async def _run(self) -> None:
        clock = self.layer.clock
        while True:
            deadline = self.layer.next_deadline()
            timeout = 0.5 if deadline is None else min(0.5, max(0.0, deadline - clock.now()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            txs = [t for t in self.layer.due() if t.service == "tlm"]
            if txs:
                self.spatems += txs
                self.sent.set()


@pytest.fixture
def live(make_layer):
    """A services layer on the system clock with the example MAPEM active."""
    layer = make_layer(SystemClock())
    layer.trigger("rlt", {"payload": example("mapem")})
    layer.due()
    return layer


async def test_udp_json_feed_at_10_hz_drives_spatems_and_the_watchdog_stops_them(live, codec):
    services = Recording(live)
    ages: list[tuple[str, float]] = []
    feed = ControllerFeed(
        ControllerFeedConfig.from_dict(
            {"host": "127.0.0.1", "port": 0, "watchdog_timeout_s": 0.3, "age_report_interval_s": 0.05}
        ),
        services,
        clock=live.clock,
        on_feed_age=lambda ix, age: ages.append((ix, age)),
    )
    results: asyncio.Queue = asyncio.Queue()
    runner = ControllerRunner(feed, on_result=results.put_nowait)
    await runner.start()
    tx_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        async with Daemon(live) as daemon:
            clock = live.clock
            end_of_red = clock.now() + 5.0  # one absolute end time, counted down by every update
            tx_sock.sendto(b"not json", runner.address)
            bad = await asyncio.wait_for(results.get(), 2)
            assert (bad.accepted, bad.reason) == (False, "malformed-json")
            for _ in range(10):
                msg = all_red_feed(clock.now())
                for g in msg["signal_groups"]:
                    g["min_end_time"] = end_of_red
                tx_sock.sendto(json.dumps(msg).encode(), runner.address)
                await asyncio.sleep(0.1)  # the controller's 10 Hz pace
            accepted = [await asyncio.wait_for(results.get(), 2) for _ in range(10)]
            assert all(r.accepted for r in accepted), [r.reason for r in accepted if not r.accepted]
            await wait_for(lambda: len(daemon.spatems) >= 10, event=daemon.sent, timeout=3)
            stamps = []
            for tx in daemon.spatems:
                ix = codec.to_jer(catalog.SPATEM, codec.decode(tx.pdu).value)["spat"]["intersections"][0]
                stamp = moy_to_posix(ix["moy"], ix["timeStamp"], clock.now())
                stamps.append(stamp)
                # the same absolute end time in every SPATEM, whatever its own timestamp
                assert {s["state-time-speed"][0]["timing"]["minEndTime"] for s in ix["states"]} == {
                    time_mark(end_of_red, stamp)
                }
            assert stamps == sorted(stamps) and len(set(stamps)) == 10
            # the controller stops: the watchdog terminates the stream within its timeout
            await wait_for(lambda: any(c[0] == "terminate" for c in services.calls), event=services.changed, timeout=3)
            assert feed.status()["intersections"]["1201"]["state"] == "stopped"
            assert len(daemon.spatems) == 10  # nothing was repeated after the feed stopped
            assert live.list("tlm") == []
            assert ages and ages[-1][0] == "1201" and ages[-1][1] >= 0.3
    finally:
        tx_sock.close()
        await runner.stop()
    assert runner.address is None


async def test_udp_tscbm_datagrams(mapped, clock):
    feed = ControllerFeed(
        ControllerFeedConfig.from_dict(
            {
                "format": "tscbm",
                "host": "127.0.0.1",
                "port": 0,
                "intersections": [{"id": 1201, "controller": "127.0.0.1", "signal_groups": PHASE_MAP}],
            }
        ),
        mapped,
        clock=clock,
    )
    results: asyncio.Queue = asyncio.Queue()
    runner = ControllerRunner(feed, on_result=results.put_nowait)
    await runner.start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        sod = round(clock.now()) % 86400
        s.sendto(
            tscbm_bytes(
                phases={p: (50, 60, 50, 60, 50, 60) for p in range(1, 9)},
                reds=range(1, 9),
                dont_walks=range(1, 9),
                overlap_reds=(1,),
                seconds_of_day=sod,
                milliseconds=round(clock.now() % 1 * 1000),
            ),
            runner.address,
        )
        s.sendto(b"\xcd\x10\x00", runner.address)
        first, second = [await asyncio.wait_for(results.get(), 2) for _ in range(2)]
    await runner.stop()
    assert first.accepted and first.intersection == "1201"
    assert (second.accepted, second.reason) == (False, "tscbm-bad-length")
    assert [t.service for t in mapped.due()] == ["tlm"]


async def test_json_feed_over_http(mapped, clock, codec):
    feed = ControllerFeed(ControllerFeedConfig.from_dict({"port": None}), mapped, clock=clock)
    app = web.Application()
    app.add_routes(feed_routes(feed))
    app.add_routes(status_routes(lambda: {"controller": feed.status()}))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/v1/integrations/controller/feed", json=all_red_feed(clock.now())) as r:
                assert r.status == 202
                assert (await r.json())["accepted"] is True
            [tx] = [t for t in mapped.due() if t.service == "tlm"]
            assert codec.decode(tx.pdu).value["spat"]["intersections"][0]["id"] == {"id": 1201}
            async with http.post(f"{base}/v1/integrations/controller/feed", data=b"{oops") as r:
                assert r.status == 400 and (await r.json())["error"]["code"] == "malformed-json"
            stale = all_red_feed(clock.now() - 0.5)
            async with http.post(f"{base}/v1/integrations/controller/feed", json=stale) as r:
                body = await r.json()
                assert r.status == 409 and body["error"]["code"] == "out-of-order"
            bad = all_red_feed(clock.now() + 0.1, groups=range(1, 11))
            async with http.post(f"{base}/v1/integrations/controller/feed", json=bad) as r:
                body = await r.json()
                assert r.status == 409 and body["error"]["code"] == "tlm-signal_group_mismatch"
                assert body["error"]["path"] == "payload.spat.intersections[0].states"
            async with http.get(f"{base}/v1/integrations/controller") as r:
                status = await r.json()
                assert status["intersections"]["1201"]["updates"] == 1
                assert status["dropped"] == {"malformed-json": 1, "out-of-order": 1, "tlm-signal_group_mismatch": 1}
            async with http.get(f"{base}/v1/integrations/status") as r:
                assert (await r.json())["controller"]["counts"]["accepted"] == 1
    finally:
        await runner.cleanup()
