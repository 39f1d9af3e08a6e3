"""Costs that must not grow with the number of active entries (issue 13: hundreds of MAP files at start).

* a store write serialises the counters it changes, not every counter in the cursor file;
* an RLT change re-indexes its own intersections only.

These tests assert on what is written and computed, never on time.
"""

from __future__ import annotations

import json

import pytest

from rsu.services import cursors
from rsu.services.cursors import Cursor, CursorState
from rsu.services.errors import ServiceError
from rsu.services.store import DB_NAME, Store
from services.support import example

FIRST = 5000  # intersection ids of the generated MAPEMs


def _mapem(ident: int, shift: int = 0) -> dict:
    v = example("mapem")
    v["map"]["intersections"][0]["id"]["id"] = ident
    v["map"]["intersections"][0]["laneSet"][0]["nodeList"]["nodes"][0]["delta"]["node-XY3"]["x"] += shift
    return v


# --- (a) the cursor file ------------------------------------------------------------------------------


def test_store_write_serialises_only_the_counters_it_changes(tmp_path):
    store = Store(tmp_path)
    try:
        store.apply(counters={f"rlt.rev.{i}": (i % 128, f"h{i}") for i in range(300)})
        assert store._cursor_writer.serialised == 300  # the first change after a start: the whole file
        store.apply(counters={"rlt.rev.7": (8, "h7b")})
        assert store._cursor_writer.serialised == 1  # one counter changed: one serialised, not 300
        store.apply(counters={"ivi.next.FR57": (2, None)})  # a new counter among the others
        assert store._cursor_writer.serialised == 1
        store.apply()  # an entry change without counters: the commit serial only
        assert store._cursor_writer.serialised == 0
        # the file with its log holds every counter, in step with the store
        path = cursors.cursor_path(tmp_path / DB_NAME)
        state = cursors.read(path)
        assert state is not None
        assert state.counters == store.cursors() and len(state.counters) == 301
        assert state.counters["rlt.rev.7"] == Cursor(8, "h7b", 2)
        assert (state.commit, state.pending) == (3, 4) and store.commit_serial == 4
        # the whole file, when the writer writes it, is byte for byte what a full write gives
        store._cursor_writer.write(CursorState(state.commit, state.pending, store.cursors()))
        assert store._cursor_writer.serialised == 2  # the two counters changed since it was last written
        written = path.read_bytes()
        cursors.write(path, CursorState(state.commit, state.pending, store.cursors()))
        assert path.read_bytes() == written
    finally:
        store.close()


def test_failed_cursor_write_leaves_the_next_write_complete(tmp_path):
    """A write that fails keeps nothing of itself: the next one writes the store's own counters."""
    from services.test_store_guard import unwritable

    store = Store(tmp_path)
    try:
        store.apply(counters={"a": (1, None), "b": (1, None)})
        path = cursors.cursor_path(tmp_path / DB_NAME)
        unwritable(store._cursor_writer._log_fd)
        with pytest.raises(Exception, match="cursor file"):
            store.apply(counters={"a": (5, None)})
        store.apply(counters={"b": (2, None)})
        # after a failure the whole file again (the log may end in a part of the failed change): the file
        # alone holds every counter, and the log is empty
        assert cursors.parse(json.loads(path.read_bytes())).counters == store.cursors()
        assert cursors.log_path(path).read_bytes() == b""
        state = cursors.read(path)
        assert state is not None
        assert state.counters == {"a": Cursor(1, None, 1), "b": Cursor(2, None, 2)} == store.cursors()
    finally:
        store.close()


# --- (b) RLT index -------------------------------------------------------------------------------------


def test_rlt_change_reindexes_only_its_own_intersections(layer):
    for i in range(20):
        layer.trigger("rlt", {"payload": _mapem(FIRST + i)})
    rlt = layer.services["rlt"]
    keys = [f"{FIRST + i}" for i in range(20)]
    before = {k: rlt.intersection(k) for k in keys}
    assert all(before.values())
    answer = layer.update("rlt", keys[3], {"payload": _mapem(FIRST + 3, shift=1)})
    assert answer["content_changed"]
    for k in keys:
        if k == keys[3]:
            assert rlt.intersection(k) is not before[k] and rlt.intersection(k)[1] == before[k][1] + 1
        else:
            assert rlt.intersection(k) is before[k]  # untouched: not recomputed
    layer.terminate("rlt", keys[5], {"mode": "stop"})
    assert rlt.intersection(keys[5]) is None and rlt.intersection(keys[6]) is before[keys[6]]
    # the overlap check uses the same bookkeeping: an intersection of an active MAPEM cannot be triggered again
    with pytest.raises(ServiceError) as e:
        layer.trigger("rlt", {"payload": _mapem(FIRST + 4)})
    assert e.value.code == "already_active"
    layer.trigger("rlt", {"payload": _mapem(FIRST + 5)})  # its MAPEM ended: free again
    assert rlt.intersection(keys[5]) is not None


def test_restart_indexes_every_restored_intersection(make_layer):
    layer = make_layer()
    for i in range(5):
        layer.trigger("rlt", {"payload": _mapem(FIRST + i)})
    revisions = {i: layer.services["rlt"].intersection(f"{FIRST + i}")[1] for i in range(5)}
    layer.close()
    again = make_layer()
    assert {i: again.services["rlt"].intersection(f"{FIRST + i}")[1] for i in range(5)} == revisions


# --- (c) MAP files loaded together start spread -------------------------------------------------------------
