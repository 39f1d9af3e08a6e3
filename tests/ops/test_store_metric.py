"""A store found empty at start is visible on /metrics (rsu_store_events_total), not only in the log and
/v1/status: the person on call alerts on it. One trigger only before the loss: the cursor file then
records that change as the one being written, and the loss must still be reported."""

from __future__ import annotations

from rsu.clock import ManualClock
from tests.ops.rxharness import running_daemon
from tests.services.support import example

DB_NAME = "services.sqlite3"


async def test_a_lost_store_is_counted_on_the_metrics(tmp_path):
    state = tmp_path / "state"
    clock = ManualClock(1_780_000_000.0)
    async with running_daemon(state, clock) as d:
        d.layer.trigger("rlt", {"payload": example("mapem")})
        assert d.metrics.store_events.labels("store_lost")._value.get() == 0
    for suffix in ("", "-wal", "-shm"):
        (state / (DB_NAME + suffix)).unlink(missing_ok=True)
    (state / DB_NAME).write_bytes(b"")  # e.g. a full disk while the file was rewritten
    async with running_daemon(state, clock) as d:
        assert d.layer.list() == [], d.layer.stats()
        assert d.metrics.store_events.labels("store_lost")._value.get() == 1, d.layer.stats()["counts"]
        assert 'rsu_store_events_total{event="store_lost"} 1.0' in d.metrics.exposition().decode()
