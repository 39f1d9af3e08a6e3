"""Forwarding what the RSU receives to the centre, end to end: a daemon in this process receives signed
SPATEMs over its GN transport (real verification), and forwards them to a real Mosquitto (the centre's
broker, a persistent-session subscriber on the other side) and a real aiohttp webhook. The broker and
the webhook go down while messages keep arriving, come back, and every message is counted on the other
side: at least once, in order, each with an id to de-duplicate on. Then the same after a daemon restart."""

from __future__ import annotations

import asyncio
import json

import pytest

import tests.security.samples as samples
from rsu import catalog
from rsu.clock import ManualClock
from rsu.forward.config import ForwardSection
from rsu.ops.daemon import Daemon
from tests.forward.centre import CentreSubscriber, Webhook, first_seen_in_order, persistent_broker, until
from tests.ops.rxharness import Neighbour, daemon_config, feed_gn
from tests.transports.conftest import free_tcp_port

START = 1_780_000_000.0


def config(state, broker, webhook, **sink):
    base = daemon_config(state)
    fwd = ForwardSection.model_validate(
        {
            "sinks": [
                {
                    "type": "mqtt",
                    "name": "centre",
                    "host": broker.host,
                    "port": broker.port,
                    "retry_initial": 0.05,
                    "retry_max": 0.5,
                    "envelope": True,
                    **sink,
                },
                {
                    "type": "webhook",
                    "name": "archive",
                    "url": webhook.url,
                    "retry_initial": 0.05,
                    "retry_max": 0.5,
                    "services": ["tlm"],
                    **sink,
                },
            ]
        }
    )
    return base.model_copy(update={"forward": fwd})


def spatem_from(nb: Neighbour, clock: ManualClock, station: int) -> bytes:
    clock.advance(0.001)  # every signature its own generationTime (no replay)
    value = samples.spatem()
    value["header"]["stationID"] = station
    return nb.frame(catalog.SPATEM, nb.pdu(catalog.SPATEM, value))


def sample(metric) -> float:
    return metric._value.get()


async def test_centre_outage_under_load_loses_nothing_and_keeps_the_order(tmp_path, mosquitto_bin):
    broker = persistent_broker(mosquitto_bin, tmp_path)
    broker.start()
    webhook = Webhook(free_tcp_port())
    await webhook.start()
    centre = CentreSubscriber(broker)
    await centre.start()
    clock = ManualClock(START)
    d = Daemon(config(tmp_path / "state", broker, webhook), clock=clock)
    await d.start()
    try:
        nb = Neighbour(d.config.pki_path, clock)
        stations = iter(range(10_000, 20_000))
        fed: list[int] = []

        def feed(n: int) -> None:
            for _ in range(n):
                station = next(stations)
                feed_gn(d, spatem_from(nb, clock, station))
                fed.append(station)

        def mqtt_stations() -> list[int]:
            by_id = {ident: body["station_id"] for _, ident, body in centre.received}
            return [by_id[i] for i in first_seen_in_order([ident for _, ident, _ in centre.received])]

        def hook_stations() -> list[int]:
            by_id = {ident: body["station_id"] for ident, body, _ in webhook.received}
            return [by_id[i] for i in first_seen_in_order([ident for ident, _, _ in webhook.received])]

        feed(50)
        await until(lambda: len(mqtt_stations()) == 50 and len(hook_stations()) == 50, what="before the outage")

        broker.stop()
        await centre.stop()
        await webhook.stop()
        for _ in range(4):  # messages keep arriving while the centre is away
            feed(50)
            await asyncio.sleep(0.1)
        m = d.metrics
        await until(lambda: sample(m.forward_queued.labels("archive")) == 200, what="200 queued for the webhook")
        assert d.forward.status()["archive"]["last_error"] is not None
        assert sample(m.forward_queued.labels("centre")) >= 199  # one may have been in flight at the stop

        broker.start()
        await centre.start()  # the persistent session is back with the broker's saved state
        await webhook.start()
        feed(100)
        await until(lambda: len(mqtt_stations()) == 350 and len(hook_stations()) == 350, what="after the outage")
        assert mqtt_stations() == fed and hook_stations() == fed  # everything, in order
        await until(lambda: sample(m.forward_queued.labels("centre")) == 0, what="queue drained")
        assert sample(m.forward_queued.labels("archive")) == 0
        assert sample(m.forward_delivered.labels("archive")) >= 350
        assert sample(m.forward_oldest_age.labels("archive")) == 0
        assert not any(
            s.name.startswith("rsu_forward_dropped")
            for f in m.registry.collect()
            for s in f.samples
            if s.value and s.name.startswith("rsu_forward_dropped")
        )

        ids = [ident for ident, _, _ in webhook.received]
        assert all(i.startswith(f"{d.config.station.id}-archive-") for i in ids)
        unique = first_seen_in_order(ids)
        assert [int(i.rsplit("-", 1)[1]) for i in unique] == sorted(int(i.rsplit("-", 1)[1]) for i in unique)
        topic, ident, body = centre.received[0]
        assert topic == f"rsu/{d.config.station.id}/tlm/spatem" and body["id"] == ident
        assert body["message"] == "spatem" and body["security"]["its_aid"] == catalog.SPATEM.its_aid
        assert body["secured_data"] and "secured_data" not in webhook.received[0][1]  # envelope: per sink
        assert body["pdu"]["header"]["stationID"] == 10_000
    finally:
        await d.stop()
        await centre.stop()
        await webhook.stop()
        broker.stop()


async def test_delivery_resumes_in_order_after_a_restart(tmp_path, mosquitto_bin):
    """Messages queued while the webhook was down are delivered by the next daemon on the same state."""
    broker = persistent_broker(mosquitto_bin, tmp_path)  # never started: the MQTT sink keeps its queue
    webhook = Webhook(free_tcp_port())
    clock = ManualClock(START)
    cfg = config(tmp_path / "state", broker, webhook, services=["tlm"])
    d = Daemon(cfg, clock=clock)
    await d.start()
    nb = Neighbour(d.config.pki_path, clock)
    try:
        for station in range(1, 31):
            feed_gn(d, spatem_from(nb, clock, station))
        assert d.forward.status()["archive"]["queued"] == 30 and d.forward.status()["centre"]["queued"] == 30
    finally:
        await d.stop()
    await webhook.start()
    d = Daemon(cfg, clock=clock)
    await d.start()
    try:
        await until(lambda: len(first_seen_in_order([i for i, _, _ in webhook.received])) == 30)
        assert [b["station_id"] for _, b, _ in webhook.received][:30] == list(range(1, 31))
        assert d.forward.status()["centre"]["queued"] == 30  # its broker never came up: still kept
    finally:
        await d.stop()
        await webhook.stop()


async def test_filters_by_service_and_psid(tmp_path):
    webhook = Webhook(free_tcp_port())
    await webhook.start()
    clock = ManualClock(START)
    base = daemon_config(tmp_path / "state")
    fwd = ForwardSection.model_validate(
        {
            "sinks": [
                {"type": "webhook", "name": "srem-only", "url": webhook.url, "psids": [catalog.SREM.its_aid]},
                {"type": "webhook", "name": "ivi-only", "url": webhook.url, "services": ["ivim"]},
            ]
        }
    )
    d = Daemon(base.model_copy(update={"forward": fwd}), clock=clock)
    await d.start()
    try:
        nb = Neighbour(d.config.pki_path, clock)
        feed_gn(d, spatem_from(nb, clock, 5))
        clock.advance(0.001)
        feed_gn(d, nb.frame(catalog.SREM, nb.pdu(catalog.SREM, samples.srem())))
        clock.advance(0.001)
        feed_gn(d, nb.frame(catalog.IVIM, nb.pdu(catalog.IVIM, samples.ivim())))
        await until(lambda: len(webhook.received) == 2)
        await asyncio.sleep(0.2)  # a wrong third delivery would have arrived by now (the count below fails)
        got = sorted((i.split("-")[1], b["message"]) for i, b, _ in webhook.received)
        assert got == [("ivi", "ivim"), ("srem", "srem")]
    finally:
        await d.stop()
        await webhook.stop()


async def test_bounds_drop_the_oldest_and_the_expired_counted_on_the_manual_clock(tmp_path):
    """The centre never answers (nothing listens on the webhook's port): the sink's queue keeps the newest
    queue_max_items, then drops what is older than queue_max_age when the daemon's clock says so."""
    clock = ManualClock(START)
    base = daemon_config(tmp_path / "state")
    fwd = ForwardSection.model_validate(
        {
            "sinks": [
                {
                    "type": "webhook",
                    "name": "down",
                    "url": f"http://127.0.0.1:{free_tcp_port()}/x",
                    "queue_max_items": 5,
                    "queue_max_age": "10s",
                    "retry_initial": 1,
                }
            ]
        }
    )
    d = Daemon(base.model_copy(update={"forward": fwd}), clock=clock)
    await d.start()
    try:
        nb = Neighbour(d.config.pki_path, clock)
        for station in range(1, 9):
            feed_gn(d, spatem_from(nb, clock, station))
        m = d.metrics
        assert sample(m.forward_queued.labels("down")) == 5
        assert sample(m.forward_dropped.labels("down", "queue-full")) == 3
        kept = [json.loads(i.body)["body"]["station_id"] for i in d.forward.sinks["down"].queue.peek(10)]
        assert kept == [4, 5, 6, 7, 8]
        clock.advance(5)
        d.forward.refresh()
        assert sample(m.forward_oldest_age.labels("down")) == pytest.approx(5.004)
        clock.advance(6)
        d.forward.refresh()
        assert sample(m.forward_dropped.labels("down", "expired")) == 5
        assert sample(m.forward_queued.labels("down")) == 0 and sample(m.forward_oldest_age.labels("down")) == 0
    finally:
        await d.stop()


async def test_a_reload_that_changes_the_sinks_keeps_the_queues(tmp_path):
    """SIGHUP with a new forward: section: the queued messages stay and go to the new sink settings."""
    import yaml

    webhook = Webhook(free_tcp_port())
    clock = ManualClock(START)
    data = daemon_config(tmp_path / "state").model_dump(mode="json", exclude_none=True)
    data["forward"] = {
        "sinks": [
            {"type": "webhook", "name": "archive", "url": webhook.url + "-old", "retry_initial": 0.05, "retry_max": 0.2}
        ]
    }
    path = tmp_path / "rsu.yaml"
    path.write_text(yaml.safe_dump(data))
    from rsu.ops import config as cfgmod

    d = Daemon(cfgmod.load(path), config_path=str(path), clock=clock)
    await d.start()
    try:
        nb = Neighbour(d.config.pki_path, clock)
        for station in range(1, 4):
            feed_gn(d, spatem_from(nb, clock, station))
        await webhook.start()  # answers 404 on the old path: nothing is acknowledged
        await asyncio.sleep(0.3)
        assert d.forward.status()["archive"]["queued"] == 3 and webhook.received == []
        data["forward"]["sinks"][0]["url"] = webhook.url
        path.write_text(yaml.safe_dump(data))
        reload = asyncio.create_task(d.reload())
        station = 3
        while not reload.done():  # messages keep arriving while the sinks are replaced
            station += 1
            feed_gn(d, spatem_from(nb, clock, station))
            await asyncio.sleep(0)
        assert reload.result() and station > 4
        feed_gn(d, spatem_from(nb, clock, station + 1))  # the hub subscription followed the reload
        await until(lambda: len({i for i, _, _ in webhook.received}) == station + 1)
        stations = [b["station_id"] for i, b, _ in webhook.received]
        assert sorted(set(stations)) == list(range(1, station + 2)) and stations[:3] == [1, 2, 3]
    finally:
        await d.stop()
        await webhook.stop()


async def test_a_queued_record_that_cannot_be_sent_is_dropped_counted_and_the_rest_goes_on(tmp_path):
    from rsu.forward.queue import DiskQueue

    webhook = Webhook(free_tcp_port())
    await webhook.start()
    clock = ManualClock(START)
    state = tmp_path / "state"
    q = DiskQueue(state / "forward" / "archive.sqlite", clock, max_items=10, max_age_s=60)

    def good(station: int) -> bytes:
        return json.dumps({"meta": {"service": "tlm", "message": "spatem"}, "body": {"station_id": station}}).encode()

    for body in (good(1), b"\xffnot json", good(2)):
        q.push(body)
    q.close()
    fwd = ForwardSection.model_validate({"sinks": [{"type": "webhook", "name": "archive", "url": webhook.url}]})
    d = Daemon(daemon_config(state).model_copy(update={"forward": fwd}), clock=clock)
    await d.start()
    try:
        await until(lambda: len(webhook.received) == 2)
        assert [b["station_id"] for _, b, _ in webhook.received] == [1, 2]
        assert [i.rsplit("-", 1)[1] for i, _, _ in webhook.received] == ["1", "3"]
        assert sample(d.metrics.forward_dropped.labels("archive", "render-error")) == 1
        await until(lambda: d.forward.status()["archive"]["queued"] == 0)
    finally:
        await d.stop()
        await webhook.stop()
