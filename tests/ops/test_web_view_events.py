"""The web view's event stream (GET /v1/ui/events) and state (GET /v1/ui/state) over real HTTP, against an
in-process daemon (real sockets, real security, injected clock): a SPATEM the daemon sends and one it
receives become ``spat`` events; the streams are bounded (a cap on open streams, slow clients closed), and
each close is counted."""

from __future__ import annotations

import asyncio
import json

import aiohttp

import tests.security.samples as samples
from rsu import catalog
from rsu.api import ui
from rsu.clock import ManualClock
from tests.ops.daemonproc import example
from tests.ops.rxharness import Neighbour, feed_gn, running_daemon

START = 1_780_000_000.0


async def _events(resp: aiohttp.ClientResponse, n: int) -> list[dict]:
    """The next ``n`` ``spat`` events of an open stream."""
    out: list[dict] = []
    name = None
    while len(out) < n:
        line = (await asyncio.wait_for(resp.content.readline(), 30)).decode().rstrip("\n")
        assert line or name is not None or not resp.content.at_eof(), "the stream ended"
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: ") and name == "spat":
            out.append(json.loads(line[6:]))
    return out


def _closed(d, reason: str) -> float:
    return d.metrics.api_connections_closed.labels(reason)._value.get()


async def test_sent_and_received_spatems_become_spat_events(tmp_path):
    clock = ManualClock(START)
    async with running_daemon(tmp_path / "s", clock) as d, aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{d.api_port}"
        spatem = example("spatem-4arm-intersection.json")
        async with http.post(f"{url}/v1/tlm/messages", json={"payload": spatem}) as r:
            assert r.status == 201, await r.text()
        async with http.get(f"{url}/v1/ui/events") as stream:
            assert stream.headers["Content-Type"].startswith("text/event-stream")
            [sent] = await _events(stream, 1)  # what is on the air now, on connect
            assert sent["source"] == "sent" and sent["intersection"] == "1201"
            assert sent["groups"]["1"] == {"state": "permissive-Movement-Allowed", "class": "green"}
            assert len(sent["groups"]) == len(spatem["spat"]["intersections"][0]["states"])

            nb = Neighbour(d.config.pki_path, clock)
            value = samples.spatem()
            value["spat"]["intersections"][0]["id"] = {"region": 7, "id": 1301}
            feed_gn(d, nb.frame(catalog.SPATEM, nb.pdu(catalog.SPATEM, value)))
            [received] = await _events(stream, 1)
            assert received["source"] == "received" and received["intersection"] == "7.1301"
            assert received["groups"] == {
                "1": {"state": "protected-Movement-Allowed", "class": "green"},
                "2": {"state": "stop-And-Remain", "class": "red"},
            }
            assert received["station_id"] == value["header"]["stationID"]

        async with http.get(f"{url}/v1/ui/state") as r:
            state = await r.json()
        assert [(s["source"], s["intersection"]) for s in state["spat"]] == [("sent", "1201")]
        assert [m["service"] for m in state["store"]] == ["tlm"]
        # security on with the test PKI's week-long ATs: listed, and no warning
        assert state["expiry"]["items"] and state["expiry"]["warnings"] == []
        assert {t["name"] for t in state["transports"]} == {"gn", "mqtt"}
        assert {t["state"] for t in state["transports"] if t["kind"] == "mqtt"} == {"disconnected"}


async def test_event_streams_are_capped_and_counted(tmp_path):
    clock = ManualClock(START)
    async with (
        running_daemon(tmp_path / "s", clock) as d,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http,
    ):
        url = f"http://127.0.0.1:{d.api_port}/v1/ui/events"
        streams = [await http.get(url) for _ in range(ui.MAX_STREAMS)]
        try:
            assert all(s.status == 200 for s in streams)
            async with http.get(url) as extra:
                assert extra.status == 503
                assert "at most" in (await extra.json())["error"]["reason"]
            assert _closed(d, "ui_streams_full") == 1
        finally:
            for s in streams:
                s.close()


async def test_a_client_that_falls_behind_is_closed_and_counted(tmp_path):
    clock = ManualClock(START)
    async with running_daemon(tmp_path / "s", clock) as d, aiohttp.ClientSession() as http:
        d.hub.resize(d.layer.ctx.rules.received_history, 2)  # each subscriber holds 2 events at most
        nb = Neighbour(d.config.pki_path, clock)
        async with http.get(f"http://127.0.0.1:{d.api_port}/v1/ui/events") as stream:
            await stream.content.readline()  # the stream is open: its subscription exists
            for i in range(5):  # no await between: the stream's handler cannot take them one by one
                clock.advance(0.01)
                value = samples.spatem()
                value["spat"]["intersections"][0]["revision"] = i
                feed_gn(d, nb.frame(catalog.SPATEM, nb.pdu(catalog.SPATEM, value)))
            rest = await asyncio.wait_for(stream.content.read(), 30)  # the daemon ends the stream
        assert b"event: spat" not in rest
        assert _closed(d, "ui_slow") == 1


async def test_state_lists_srem_requests_and_the_ssem_answering_them(tmp_path):
    clock = ManualClock(START)
    async with running_daemon(tmp_path / "s", clock) as d, aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{d.api_port}"
        nb = Neighbour(d.config.pki_path, clock)
        feed_gn(d, nb.frame(catalog.SREM, nb.pdu(catalog.SREM, samples.srem())))
        async with http.get(f"{url}/v1/ui/state") as r:
            tlc = (await r.json())["tlc"]
        assert [q["key"] for q in tlc["requests"]] == ["station-77:1201:1"] and tlc["messages"] == []
        decision = {"decision": {"request": "station-77:1201:1", "status": "granted"}}
        async with http.post(f"{url}/v1/tlc/messages", json=decision) as r:
            assert r.status == 201, await r.text()
        async with http.get(f"{url}/v1/ui/state") as r:
            tlc = (await r.json())["tlc"]
        assert [(m["id"], m["message"]) for m in tlc["messages"]] == [("ssem-1201", "ssem")]
