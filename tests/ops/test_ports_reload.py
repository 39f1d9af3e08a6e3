"""The daemon's ports across reloads (in-process daemon, real sockets): the API and the integrations hold
explicit ports (rsu.services.ports.CurrentServices, rsu.api.services.ApiServices) that pass each call to
the service layer current at that moment. A reload that replaces the layer must leave every user working:
an IS_DataProviding subscriber keeps receiving, the API's triggers land in the new layer (and are
counted), the controller's JSON feed keeps driving the TLM service. Also the reload table itself."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path

import aiohttp
import yaml

from rsu import catalog
from rsu.clock import ManualClock, SystemClock
from rsu.ops import config as cfgmod
from rsu.ops.daemon import Daemon
from rsu.ops.reload import PARTS, parts_to_rebuild
from tests.integrations.support import all_red_feed
from tests.ops.daemonproc import EXAMPLES, example
from tests.ops.rxharness import PROVIDER, Neighbour, feed_gn
from tests.security import samples
from tests.transports.conftest import free_tcp_port, free_udp_port, random_group

START = 1_780_000_000.0


def config_dict(state_dir: Path, **extra) -> dict:
    return {
        "state_dir": str(state_dir),
        "api": {"port": free_tcp_port()},
        "logging": {"level": "ERROR"},
        "services": {"ivi_provider": PROVIDER},
        "transports": [{"type": "gn-udp", "name": "gn", "group": random_group(), "port": free_udp_port()}],
        **extra,
    }


async def reload_with(d: Daemon, path: Path, config: dict) -> None:
    path.write_text(yaml.safe_dump(config))
    assert await d.reload(), d.reloads


class Events:
    """A real HTTP client on GET /v1/received (server-sent events), read on the test's event loop."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session, self.url = session, url
        self.resp: aiohttp.ClientResponse | None = None

    async def open(self) -> Events:
        self.resp = await self.session.get(self.url)
        assert self.resp.status == 200 and self.resp.headers["Content-Type"].startswith("text/event-stream")
        return self

    async def next(self, name: str = "received") -> dict:
        async def read() -> dict:
            event, data = "message", []
            while True:
                line = (await self.resp.content.readline()).decode().rstrip("\n")
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif not line and data:
                    if event == name:
                        return json.loads("\n".join(data))
                    event, data = "message", []

        return await asyncio.wait_for(read(), 20)  # a bound against a hang, not a timing assertion


async def test_a_subscriber_keeps_receiving_and_the_api_follows_after_a_services_only_reload(tmp_path):
    clock = ManualClock(START)
    path = tmp_path / "rsu.yaml"
    config = config_dict(tmp_path / "state")
    path.write_text(yaml.safe_dump(config))
    d = Daemon(cfgmod.load(str(path)), config_path=str(path), clock=clock)
    await d.start()
    try:
        url = f"http://127.0.0.1:{d.api_port}"
        nb = Neighbour(d.config.pki_path, clock)
        pdu = nb.pdu(catalog.SPATEM, samples.spatem())
        async with aiohttp.ClientSession() as http:
            events = await Events(http, url + "/v1/received?type=received").open()
            feed_gn(d, nb.frame(catalog.SPATEM, pdu))
            first = await events.next()
            assert first["message"] == "spatem"

            old_layer, old_security, old_transports = d.layer, d.security, d.transports
            config["services"]["rules"] = {"subscriber_queue": 10}
            await reload_with(d, path, config)
            assert d.layer is not old_layer  # the layer was replaced ...
            assert d.security is old_security and d.transports is old_transports  # ... and only the layer

            clock.advance(0.5)
            feed_gn(d, nb.frame(catalog.SPATEM, pdu))  # signed again: a new message
            second = await events.next()
            assert second["message"] == "spatem" and second["id"] > first["id"]

            # a subscriber that comes after the reload finds the history from before it (one hub)
            late = await Events(http, url + f"/v1/received?type=received&last_id={first['id'] - 1}").open()
            assert (await late.next())["id"] == first["id"]

            # IS_Triggering through the API lands in the new layer and is counted
            async with http.post(
                url + "/v1/rlt/messages", json={"payload": example("mapem-4arm-intersection.json")}
            ) as resp:
                answer = await resp.json()
                assert resp.status == 201, answer
            assert d.layer.get("rlt", answer["id"])["id"] == answer["id"]
            async with http.get(url + "/metrics") as resp:
                assert (
                    'rsu_messages_triggered_total{action="trigger",message="mapem",service="RLT"} 1.0'
                    in await resp.text()
                )
            async with http.get(url + "/v1/status") as resp:
                status = await resp.json()
            assert status["reloads"]["ok"] == 1 and status["services"]["received"]["subscribers"] == 2
            assert [m["id"] for m in status["messages"]] == [answer["id"]]
            for e in (events, late):
                e.resp.close()
    finally:
        await d.stop()


async def test_the_controller_feed_keeps_triggering_after_a_reload_that_replaces_the_layer(tmp_path):
    maps = tmp_path / "maps"
    maps.mkdir()
    shutil.copy(EXAMPLES / "mapem-4arm-intersection.json", maps / "1201.json")
    path = tmp_path / "rsu.yaml"
    config = config_dict(
        tmp_path / "state",
        integrations={
            "map_files": {"intersections": {1201: str(maps / "1201.json")}},
            "controller": {"format": "json", "port": None},
        },
    )  # the HTTP feed only
    path.write_text(yaml.safe_dump(config))
    d = Daemon(cfgmod.load(str(path)), config_path=str(path), clock=SystemClock())
    await d.start()
    try:
        feed_url = f"http://127.0.0.1:{d.api_port}/v1/integrations/controller/feed"
        async with aiohttp.ClientSession() as http:
            async with http.post(feed_url, json=all_red_feed(time.time())) as resp:
                assert resp.status == 202, await resp.text()
            before = d.layer.list("tlm")
            assert len(before) == 1

            old_layer, old_integrations = d.layer, d.integrations
            config["services"]["rules"] = {"subscriber_queue": 10}
            await reload_with(d, path, config)
            assert d.layer is not old_layer and d.integrations is old_integrations

            async with http.post(feed_url, json=all_red_feed(time.time() + 0.1, min_end=7.0)) as resp:
                body = await resp.json()
                assert resp.status == 202 and body["accepted"], body
            after = d.layer.list("tlm")
            assert [e["id"] for e in after] == [e["id"] for e in before]  # the same entry, from the store
            assert d.integrations.controller.status()["intersections"]["1201"]["state"] == "live"
            assert after[0]["generation"] > before[0]["generation"]  # the new state reached the new layer
    finally:
        await d.stop()


def test_the_reload_table():
    base = cfgmod.parse({})

    def with_(**changes) -> set[str]:
        return parts_to_rebuild(base, cfgmod.parse(changes))

    assert parts_to_rebuild(base, cfgmod.parse({})) == set()
    assert with_(logging={"level": "DEBUG"}) == set()
    assert with_(services={"rules": {"subscriber_queue": 10}}) == {"layer"}
    assert with_(security={"max_age": 20}) == {"security", "layer", "transports"}
    assert with_(station={"id": 7}) == {"layer", "transports", "forward"}  # no PKI client before or after
    assert with_(api={"port": free_tcp_port()}) == {"api"}
    assert with_(integrations={"controller": {"port": None}}) == {"integrations"}
    assert with_(forward={"sinks": []}) == set()
    assert with_(forward={"presigned": {"min_interval": 1}}) == {"forward"}
    assert with_(clock={"unsynchronized": "stop"}) == {"health"}
    assert set(PARTS) == {"health", "pki", "security", "layer", "transports", "forward", "integrations", "api"}
