"""Overload at the controller feed, in a real daemon: a burst of states (more than one loop turn
processes) leaves the newest state of every intersection on the air, the older ones are shed before
they are built and counted as superseded, and nothing is lost silently by the kernel."""

from __future__ import annotations

import json
import signal
import socket
import time

from rsu import catalog
from rsu.transports import gn
from tests.integrations.support import all_red_feed
from tests.ops.daemonproc import EXAMPLES, MulticastReceiver, RsuDaemon, group_and_port
from tests.ops.test_daemon_e2e import ETHERNET, open_frame
from tests.transports.conftest import free_udp_port

INTERSECTIONS = (1201, 1202, 1203)
BURST = 30  # states per intersection, sent while the daemon is stopped: all wait in the feed socket


def state(key: int, t: float, name: str) -> bytes:
    return json.dumps({**all_red_feed(t, key=key), "name": name}).encode()


def spatem_names(frames: list[bytes], pki_dir) -> list[tuple[int, str]]:
    out = []
    for f in frames:
        if gn.parse_packet(f[ETHERNET:]).btp_port != catalog.SPATEM.btp_port:
            continue
        _, result = open_frame(f, pki_dir)
        assert result.ok
        ix = result.pdu.value["spat"]["intersections"][0]
        out.append((ix["id"]["id"], ix["name"]))
    return out


def test_a_feed_burst_sends_the_newest_state_per_intersection_and_counts_the_superseded(tmp_path):
    group, port = group_and_port()
    maps = tmp_path / "maps"
    maps.mkdir()
    example = json.loads((EXAMPLES / "mapem-4arm-intersection.json").read_text())
    files = {}
    for key in INTERSECTIONS:
        example["map"]["intersections"][0]["id"]["id"] = key
        (maps / f"{key}.json").write_text(json.dumps(example))
        files[key] = str(maps / f"{key}.json")
    feed_port = free_udp_port()
    integrations = {
        "map_files": {"intersections": files},
        "controller": {"format": "json", "host": "127.0.0.1", "port": feed_port, "watchdog_timeout_s": 30.0},
    }
    daemon = RsuDaemon(tmp_path, group=group, port=port, extra={"integrations": integrations}).start()
    rx = MulticastReceiver(group, port)
    feed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        t = time.time()
        for key in INTERSECTIONS:  # every stream starts
            feed.sendto(state(key, t, "warm"), ("127.0.0.1", feed_port))
        seen = rx.frames(lambda got: len(set(spatem_names(got, daemon.pki_dir))) >= len(INTERSECTIONS))
        assert set(spatem_names(seen, daemon.pki_dir)) == {(k, "warm") for k in INTERSECTIONS}

        # the burst arrives while the daemon cannot run: on its next turn the feed socket holds all of it
        daemon.signal(signal.SIGSTOP)
        try:
            t = time.time()
            for i in range(BURST):
                for key in INTERSECTIONS:
                    feed.sendto(state(key, t + 0.001 * (i + 1), f"b{i}"), ("127.0.0.1", feed_port))
        finally:
            daemon.signal(signal.SIGCONT)
        newest = {(k, f"b{BURST - 1}") for k in INTERSECTIONS}
        frames = rx.frames(lambda got: newest <= set(spatem_names(got, daemon.pki_dir)))
        sent = spatem_names(frames, daemon.pki_dir)
        # one SPATEM per intersection, built from its newest state: nothing older was built or signed
        assert sorted(sent) == sorted(newest), sent

        status = daemon.get("/v1/integrations/controller")[1]
        counts, dropped = status["counts"], status["dropped"]
        overflow = dropped.get("socket-overflow", 0)
        total = len(INTERSECTIONS) * (BURST + 1)
        # every datagram is accounted for: processed, superseded, or dropped by the kernel and counted
        assert counts["received"] + counts["superseded"] + overflow == total, status
        assert overflow == 0, status  # a moderate burst fits the feed socket's receive buffer
        assert counts["received"] == 2 * len(INTERSECTIONS) and counts["accepted"] == 2 * len(INTERSECTIONS)
        superseded = len(INTERSECTIONS) * (BURST - 1)
        assert counts["superseded"] == superseded
        assert daemon.metric("rsu_scheduled_sends_skipped_total", service="TLM", reason="superseded") == superseded
        assert daemon.metric("rsu_messages_dropped_total", transport="controller", reason="socket-overflow") == 0
    finally:
        feed.close()
        rx.close()
        assert daemon.stop() == 0, daemon.log()
