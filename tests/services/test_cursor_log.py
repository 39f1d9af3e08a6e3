"""The cursor file's change log (rsu.services.cursors): each change one durable append, replayed at read.

A real kill -9 of a writer with the store then lost is in test_store_cli.py
(``test_kill_9_of_a_writer_then_check_export_and_lost_store``): the numbers continue from the file
and its log.
"""

from __future__ import annotations

import json

import pytest

from rsu.services import cursors
from rsu.services.cursors import Cursor, CursorFileError, CursorState
from rsu.services.store import DB_NAME, Store


def _changes(store: Store, n: int, start: int = 1) -> None:
    for i in range(start, start + n):
        store.apply(counters={"ivi.next.FR57": (i + 1, None), f"rlt.rev.{i % 3}": (i % 128, f"h{i}")})


def _file_alone(path) -> CursorState:
    return cursors.parse(json.loads(path.read_bytes()))


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path)
    yield s
    s.close()


@pytest.fixture
def paths(tmp_path):
    path = cursors.cursor_path(tmp_path / DB_NAME)
    return path, cursors.log_path(path)


def test_changes_after_the_first_go_to_the_log_and_reading_replays_them(tmp_path, store, paths):
    path, log = paths
    _changes(store, 1)
    first = _file_alone(path)
    assert first.counters == store.cursors() and log.read_bytes() == b""  # the first change: the whole file
    _changes(store, 5, start=2)
    assert _file_alone(path) == first  # the file is not rewritten ...
    assert len(log.read_bytes().splitlines()) == 5  # ... each change is a line of the log
    state = cursors.read(path)
    assert state is not None
    assert state.counters == store.cursors()
    assert (state.commit, state.pending) == (store.commit_serial - 1, store.commit_serial)
    store.close()
    again = Store(tmp_path)  # in step: nothing to report
    try:
        assert again.start_events == [] and again.cursors() == state.counters
    finally:
        again.close()


def test_a_torn_last_line_was_never_acknowledged_and_is_ignored(tmp_path, store, paths):
    path, log = paths
    _changes(store, 4)
    good = cursors.read(path)
    whole = log.read_bytes()
    last = whole.splitlines()[-1]
    for torn in (last[: len(last) // 2], last[:-3] + b"}}}\n", b"0000000"):
        log.write_bytes(whole + torn)
        assert cursors.read(path) == good
    store.close()
    again = Store(tmp_path)
    try:
        assert again.start_events == []
        again.apply(counters={"x": (1, None)})  # the first change after the start writes the whole file
        assert log.read_bytes() == b"" and _file_alone(path).counters == again.cursors()
    finally:
        again.close()


@pytest.mark.parametrize("damage", ["crc", "json", "shape"])
def test_a_damaged_line_before_the_last_makes_the_copy_unusable(tmp_path, store, paths, damage):
    path, log = paths
    _changes(store, 4)
    lines = log.read_bytes().splitlines(keepends=True)
    crc, _, text = lines[1].partition(b" ")
    if damage == "crc":
        lines[1] = crc + b" " + text.replace(b'"value":', b'"value":1')
    elif damage == "json":
        lines[1] = b"%08x %s\n" % (cursors.zlib.crc32(b"{not json"), b"{not json")
    else:
        bad = b'{"commit":-1,"counters":[]}'
        lines[1] = b"%08x %s\n" % (cursors.zlib.crc32(bad), bad)
    log.write_bytes(b"".join(lines))
    with pytest.raises(CursorFileError, match=r"change 2 of 3 is damaged"):
        cursors.read(path)
    expected = store.cursors()
    store.close()
    again = Store(tmp_path)  # rebuilt from the store, whose counters are kept
    try:
        assert [code for code, _ in again.start_events] == ["cursor_file_rebuilt"]
        assert again.cursors() == expected == cursors.read(path).counters
    finally:
        again.close()


def test_the_log_is_not_read_without_the_file(tmp_path, store, paths):
    path, log = paths
    _changes(store, 3)
    expected = store.cursors()
    store.close()
    path.unlink()
    assert log.read_bytes() and cursors.read(path) is None
    again = Store(tmp_path)
    try:
        assert [code for code, _ in again.start_events] == ["cursor_file_rebuilt"]
        assert cursors.read(path).counters == expected == again.cursors()
    finally:
        again.close()


def test_a_full_log_rewrites_the_file(store, paths):
    path, log = paths
    store._cursor_writer.log_limit = 600
    _changes(store, 20)
    assert len(log.read_bytes()) < 600 + 200  # emptied each time it passed the limit
    assert _file_alone(path).commit >= 10  # the file was rewritten on the way
    assert cursors.read(path).counters == store.cursors()


def test_records_the_file_is_ahead_of_change_nothing(store, paths):
    """A crash between rewriting the file and emptying the log leaves older records behind: replaying them
    moves nothing back (a counter's serial decides, the commit serial only grows)."""
    path, log = paths
    _changes(store, 6)
    stale = log.read_bytes()
    state = CursorState(store.commit_serial, None, store.cursors())
    store._cursor_writer.write(state)
    log.write_bytes(stale)
    assert cursors.read(path) == state


def test_file_written_by_the_module_drops_the_log(paths, store):
    """``rsu store recover`` / ``import`` write the whole file: a log left from before goes with it."""
    path, log = paths
    _changes(store, 3)
    assert log.read_bytes()
    state = CursorState(100, None, {"a": Cursor(1, None, 1)})
    cursors.write(path, state)
    assert not log.exists() and cursors.read(path) == state


def test_a_log_cut_anywhere_reads_as_the_changes_before_the_cut(tmp_path):
    """A crash or a power cut can stop the log at any byte: what is read is always the state after the
    last whole line before the cut (that change and those before it), never an error or a mix."""
    path = cursors.cursor_path(tmp_path / DB_NAME)
    writer = cursors.CursorWriter(path)
    counters: dict[str, Cursor] = {}
    states = []
    for i in range(8):
        changed = {
            f"c{i % 3}": Cursor(i, None if i % 2 else f"h{i}", i + 1),
            "ivi.next.FR57": Cursor(i + 2, None, i + 1),
        }
        counters = {**counters, **changed}
        state = CursorState(i, i + 1, dict(counters))
        writer.change(state, changed)
        states.append(state)
    writer.close()
    log = cursors.log_path(path)
    whole = log.read_bytes()
    ends = [i + 1 for i, b in enumerate(whole) if b == ord("\n")]
    assert len(ends) == 7  # the first change wrote the whole file
    for cut in range(len(whole) + 1):
        log.write_bytes(whole[:cut])
        lines = sum(1 for e in ends if e <= cut)
        assert cursors.read(path) == states[lines], cut
