"""IS_DataProviding across reloads: one /v1/received subscriber keeps receiving through every kind of
reload the daemon does (SIGHUP without a change, services only, transports, security, integrations),
with event ids that keep increasing; after an API address change (the only reload that must cut the
stream) a reconnect with Last-Event-ID gets what was published meanwhile. A real daemon subprocess,
real signed GN frames from a neighbour on the multicast group, a real HTTP event-stream client."""

from __future__ import annotations

import copy
import signal
import socket
import time

from rsu import catalog
from rsu import clock as clockmod
from rsu.clock import SystemClock
from tests.ops.daemonproc import RsuDaemon, group_and_port
from tests.ops.test_daemon_e2e import PAYLOADS, SseReader
from tests.transports.conftest import free_tcp_port


class Neighbour:
    """Another station on the group: signed SREM frames with increasing GN sequence numbers."""

    def __init__(self, pki_dir, net):
        from rsu.codec.facilities import get_codec
        from rsu.security.pool import AtPool
        from rsu.transports.config import GnUdpConfig
        from rsu.transports.gn_core import GnCore

        clock = SystemClock()
        pool = AtPool.load_directory(pki_dir / "at", clock)

        def sign(inner: bytes, k) -> bytes:
            at = next(t for t in pool.tickets if k.its_aid in t.certificate.app_permissions)
            return at.signer.sign(inner, k.its_aid, clockmod.time64(clock.now()), with_certificate=True)

        codec = get_codec()
        _, value = codec.from_jer(PAYLOADS["tlc"], catalog.SREM)
        self.pdu = codec.encode(value, catalog.SREM)
        self.core = GnCore(GnUdpConfig(latitude=44.8376, longitude=-0.5794, mac="02:00:00:00:00:09"), clock, sign=sign)
        self.net = net
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))

    def send(self) -> None:
        from rsu.transports.base import DisseminationParams, GeoArea

        area = GeoArea(44.837592, -0.579431, "circle", 500)
        self.sock.sendto(self.core.build_frame(self.pdu, DisseminationParams(catalog.SREM, destination=area)), self.net)

    def close(self) -> None:
        self.sock.close()


def received_ids(reader: SseReader) -> list[int]:
    with reader.cond:
        return [e["id"] for n, e in reader.events if n == "received"]


def expect_one_more(reader: SseReader, neighbour: Neighbour, daemon: RsuDaemon, what: str) -> int:
    """Send frames until the subscriber has one more received event (the transport may just have
    restarted and joined the group again: a frame sent before that is lost on the air, as on a radio)."""
    before = received_ids(reader)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        neighbour.send()
        with reader.cond:
            if reader.cond.wait_for(lambda: len(received_ids(reader)) > len(before), 0.5):
                break
    after = received_ids(reader)
    assert len(after) > len(before), f"after {what}: the subscriber got nothing\n{daemon.log()[-3000:]}"
    assert after == sorted(after) and len(set(after)) == len(after), after  # ids only increase
    return after[-1]


def reload_with(daemon: RsuDaemon, config: dict) -> None:
    ok = daemon.get("/v1/status")[1]["reloads"]["ok"]
    daemon.write_config(config)
    daemon.signal(signal.SIGHUP)
    deadline = time.monotonic() + 15
    while daemon.get("/v1/status")[1]["reloads"]["ok"] <= ok:
        assert time.monotonic() < deadline, daemon.log()[-3000:]
        time.sleep(0.05)


def test_a_subscriber_keeps_receiving_across_every_kind_of_reload(tmp_path):
    net = group_and_port()
    d = RsuDaemon(tmp_path, group=net[0], port=net[1]).start()
    neighbour = Neighbour(d.pki_dir, net)
    events = SseReader(d.url + "/v1/received?type=received")
    try:
        last = expect_one_more(events, neighbour, d, "start")
        config = copy.deepcopy(d.config)
        steps = [
            ("SIGHUP without a change", lambda c: None),
            ("services only", lambda c: c.setdefault("services", {}).update(rules={"max_entries": 512})),
            ("services and a smaller subscriber queue", lambda c: c["services"]["rules"].update(subscriber_queue=10)),
            ("transports", lambda c: c["transports"][0].update(ttl=2)),
            ("security", lambda c: c.setdefault("security", {}).update(max_age=20)),
            ("integrations", lambda c: c.update(integrations={"controller": {"port": None}})),
            ("logging only", lambda c: c["logging"].update(level="INFO")),
            ("API connection bounds", lambda c: c["api"].update(max_connections=100, idle_timeout_s=30)),
        ]
        for what, change in steps:
            change(config)
            reload_with(d, config)
            newest = expect_one_more(events, neighbour, d, what)
            assert newest > last, what
            last = newest
        # the integration added by the reload answers on the API that kept running
        status, body = d.get("/v1/integrations/controller")
        assert status == 200, body
        assert d.get("/v1/status")[1]["services"]["received"]["subscribers"] == 1
        # an API address change cuts the stream (the old socket closes); the hub is the same, so a
        # reconnect with Last-Event-ID gets every event published in between, then new ones
        config["api"]["port"] = free_tcp_port()
        ok = d.get("/v1/status")[1]["reloads"]["ok"]
        d.write_config(config)
        d.signal(signal.SIGHUP)
        d.api_port = config["api"]["port"]
        deadline = time.monotonic() + 15
        while True:
            try:
                if d.get("/v1/status")[1]["reloads"]["ok"] > ok:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, d.log()[-3000:]
            time.sleep(0.05)
        events.close()
        for _ in range(3):
            neighbour.send()
            time.sleep(0.05)
        again = SseReader(d.url + f"/v1/received?type=received&last_id={last}")
        try:
            newest = expect_one_more(again, neighbour, d, "API address change")
            ids = received_ids(again)
            assert ids[0] == last + 1 and newest > last, ids  # nothing lost in between, ids continue
        finally:
            again.close()
    finally:
        neighbour.close()
        events.close()
        assert d.stop() == 0, d.log()[-3000:]
    assert "Traceback" not in d.log()


def test_hub_resize_keeps_subscribers_and_the_newest_events():
    from rsu.services.received import ReceivedHub

    hub = ReceivedHub(history=5, queue=5)
    sub = hub.subscribe()
    for i in range(5):
        hub.publish({"type": "received", "n": i})
    hub.resize(history=2, queue=3)
    hub.publish({"type": "received", "n": 5})
    assert [e["n"] for e in sub.drain()] == [3, 4, 5] and sub.dropped == 3  # bounded at once, counted
    late = hub.subscribe(last_id=0)
    assert [e["n"] for e in late.drain()] == [4, 5]  # the history kept its newest two
    assert hub.stats()["subscribers"] == 2


def test_forwarded_integration_routes_are_every_route_an_integration_serves():
    """The daemon registers ROUTES once and forwards them to the integrations running now."""
    from rsu.integrations.routes import ROUTES, feed_routes, status_routes

    class Feed:
        def status(self):
            return {}

    served = {(r.method, r.path) for r in feed_routes(Feed()) + status_routes(dict)}
    assert served == set(ROUTES)
