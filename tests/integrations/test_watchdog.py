"""Feed watchdog: a lost controller feed stops the SPATEM (or reports unavailable), never repeats a stale state;
feed ages reach the metrics callback and the status; the feed's return restarts the stream."""

from __future__ import annotations

import pytest

from integrations.support import all_red_feed
from rsu import catalog


def spatems(layer, now=None):
    return [t for t in layer.due(now) if t.service == "tlm"]


def feed_10hz(feed, layer, clock, seconds: float) -> list:
    """Feed one update every 100 ms for ``seconds`` (the daemon's loop: due() after each)."""
    sent = []
    for _ in range(round(seconds * 10)):
        assert feed.on_json(all_red_feed(clock.now())).accepted
        sent += spatems(layer)
        feed.tick()
        clock.advance(0.1)
    return sent


def test_feed_loss_stops_the_spatem_and_recovery_restarts_it(make_feed, mapped, clock):
    feed = make_feed(watchdog_timeout_s=1.0, stale_behaviour="stop")
    assert len(feed_10hz(feed, mapped, clock, 1.0)) == 10  # one fresh SPATEM per update, 10 Hz
    last = clock.now() - 0.1
    assert feed.next_deadline() == last + 1.0
    clock.set(last + 0.99)
    feed.tick()
    assert feed.status()["intersections"]["1201"]["state"] == "live"
    clock.set(last + 1.0)
    feed.tick()
    assert feed.status()["intersections"]["1201"]["state"] == "stopped"
    assert [e["id"] for e in mapped.list("tlm")] == []  # the stream is terminated, not left to a stale state
    for dt in (0.5, 1.0, 5.0):
        assert spatems(mapped, clock.now() + dt) == []
    assert feed.counters.snapshot()["counts"]["stream-stopped"] == 1
    assert feed.next_deadline() is None
    clock.advance(3.0)
    feed.tick()
    assert feed.ages[-1] == ("1201", 4.0)  # the age keeps growing in the metrics while the feed is lost
    assert feed.status()["intersections"]["1201"]["feed_age_s"] == 4.0
    # the feed comes back: a new stream starts with the fresh state
    assert feed.on_json(all_red_feed(clock.now())).accepted
    assert len(spatems(mapped)) == 1
    assert feed.status()["intersections"]["1201"]["state"] == "live"
    assert feed.counters.get("feed-recovered") == 1 and feed.ages[-1] == ("1201", 0.0)


def test_feed_loss_reports_unavailable_then_stops(make_feed, mapped, clock, codec):
    feed = make_feed(
        watchdog_timeout_s=0.5, stale_behaviour="unavailable", unavailable_interval_s=1.0, unavailable_max_s=3.0
    )
    feed_10hz(feed, mapped, clock, 0.3)
    lost_at = clock.now() - 0.1 + 0.5
    clock.set(lost_at)
    feed.tick()
    [tx] = spatems(mapped)
    ix = codec.to_jer(catalog.SPATEM, codec.decode(tx.pdu).value)["spat"]["intersections"][0]
    assert ix["status"] == "0004"  # noValidSPATisAvailableAtThisTime
    assert [s["signalGroup"] for s in ix["states"]] == list(range(1, 13))
    assert all(s["state-time-speed"] == [{"eventState": "unavailable"}] for s in ix["states"])
    times = []
    while True:
        deadline = feed.next_deadline()
        if deadline is None:
            break
        clock.set(deadline)
        feed.tick()
        times += [round(clock.now() - lost_at, 3) for _ in spatems(mapped)]
    assert times == [1.0, 2.0]  # every second, until unavailable_max_s (3 s), then the stream stops
    assert feed.status()["intersections"]["1201"]["state"] == "stopped"
    assert mapped.list("tlm") == []
    counts = feed.counters.snapshot()["counts"]
    assert counts["unavailable-sent"] == 3 and counts["stream-stopped"] == 1 and counts["feed-lost"] == 1


def test_each_intersection_has_its_own_watchdog(make_feed, mapped, clock):
    other = {
        "intersection": "7.1202",
        "timestamp": clock.now(),
        "revision": 1,
        "signal_groups": [{"signal_group": 1, "state": "dark"}],
    }
    feed = make_feed(watchdog_timeout_s=1.0)
    assert feed.on_json(other).accepted  # no MAPEM for 7.1202: the feed gives the revision; sent with a warning
    for _ in range(15):
        clock.advance(0.1)
        assert feed.on_json(all_red_feed(clock.now())).accepted
        feed.tick()
    status = feed.status()["intersections"]
    assert status["7.1202"]["state"] == "stopped" and status["1201"]["state"] == "live"
    assert sorted(e["id"] for e in mapped.list("tlm")) == ["1201"]
    assert feed.feed_ages() == {"1201": 0.0, "7.1202": pytest.approx(1.5)}


def test_refused_updates_do_not_keep_a_stale_stream_alive(make_feed, mapped, clock):
    """Updates the TLM service refuses (here: wrong signal groups after a MAP change) are not a live feed."""
    feed = make_feed(watchdog_timeout_s=1.0)
    feed_10hz(feed, mapped, clock, 0.2)
    for _ in range(12):
        assert feed.on_json(all_red_feed(clock.now(), groups=range(1, 10))).reason == "tlm-signal_group_mismatch"
        feed.tick()
        clock.advance(0.1)
    assert feed.status()["intersections"]["1201"]["state"] == "stopped"
    assert feed.status()["intersections"]["1201"]["last_error"].startswith("signal_group_mismatch")


def test_a_daemon_behind_its_feed_queue_does_not_take_its_own_lag_for_a_lost_feed(make_feed, mapped, clock):
    """Updates wait in the feed queue for 0.5 s (overload): the watchdog gives the feed that much longer."""
    feed = make_feed(watchdog_timeout_s=1.0, stale_behaviour="stop")
    feed_10hz(feed, mapped, clock, 0.5)
    last = clock.now() - 0.1
    assert feed.next_deadline(backlog_s=0.5) == pytest.approx(last + 1.5)
    clock.set(last + 1.2)
    feed.tick(backlog_s=0.5)
    assert feed.status()["intersections"]["1201"]["state"] == "live"
    feed.tick(backlog_s=0.0)  # nothing waits: the feed is really lost
    assert feed.status()["intersections"]["1201"]["state"] == "stopped"
