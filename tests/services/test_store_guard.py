"""The store guards its identifiers: a lost, emptied, stale or damaged store never brings a number back.

Each test issues identifiers (IVI numbers, MAPEM revisions, SSEM sequence numbers, RTCMEM msgCnt),
then damages the state directory the way it happens on a roadside box (zero-length file after a
full disk, deleted file, lost WAL, garbage in the file, lost or garbled cursor file) and shows that
the next start says so and that every number moves forward.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3

import pytest

from rsu.services import cursors
from rsu.services.errors import ServiceError
from rsu.services.store import DB_NAME, Store, StoreBusy, StoreDamaged
from services.support import example, new_ivim


def _mapem(n: int) -> dict:
    """The example MAPEM with its content changed ``n`` times (each change: a new revision)."""
    v = example("mapem")
    v["map"]["intersections"][0]["laneSet"][0]["nodeList"]["nodes"][0]["delta"]["node-XY3"]["x"] += n
    return v


def _revision(answer: dict) -> int:
    return answer["identification"]["intersections"][0]["revision"]


def _issue(layer) -> dict:
    """Issue identifiers of every kind; return the last value of each."""
    rev = _revision(layer.trigger("rlt", {"payload": _mapem(0)}))
    for n in (1, 2, 3):
        rev = _revision(layer.update("rlt", "1201", {"payload": _mapem(n)}))
    numbers = [
        layer.trigger("ivi", {"payload": new_ivim()})["identification"]["iviIdentificationNumber"] for _ in range(4)
    ]
    ssem = layer.trigger("tlc", {"payload": example("ssem")})["identification"]["sequenceNumber"]
    gpc = layer.trigger("gpc", {"payload": example("rtcmem")})["identification"]["msgCnt"]
    return {"rev": rev, "ivi": max(numbers), "ssem": ssem, "gpc": gpc}


def _forward(layer, last: dict) -> None:
    """New identifiers continue after ``last``: a new IVI number, a new MAPEM revision for new content."""
    n = layer.trigger("ivi", {"payload": new_ivim()})["identification"]["iviIdentificationNumber"]
    assert n == last["ivi"] + 1
    if "1201" in {e["id"] for e in layer.list("rlt")}:
        answer = layer.update("rlt", "1201", {"payload": _mapem(99)})
    else:
        answer = layer.trigger("rlt", {"payload": _mapem(99)})
    assert _revision(answer) == last["rev"] + 1
    # the same content as the last one issued keeps its revision (vehicles cached it under that number)
    assert _revision(layer.update("rlt", "1201", {"payload": _mapem(3)})) == last["rev"] + 2


def _remove_store(state_dir) -> None:
    for suffix in ("", "-wal", "-shm"):
        (state_dir / (DB_NAME + suffix)).unlink(missing_ok=True)


def test_zero_length_store_starts_with_a_warning_and_numbers_continue(make_layer, state_dir, caplog):
    layer = make_layer()
    last = _issue(layer)
    layer.close()
    _remove_store(state_dir)
    (state_dir / DB_NAME).write_bytes(b"")  # e.g. a full disk while the file was rewritten
    with caplog.at_level("WARNING", logger="rsu.services.store"):
        again = make_layer()
    assert again.list() == []  # the messages are gone: the operator must know
    assert again.stats()["counts"]["store_lost"] == 1
    [msg] = [r.getMessage() for r in caplog.records if "empty (zero length)" in r.getMessage()]
    assert str(state_dir / DB_NAME) in msg and "trigger them again" in msg
    _forward(again, last)
    # the SSEM sequence number and the RTCMEM msgCnt continue too (new content: previous + 1)
    ssem = example("ssem")
    ssem["ssm"]["status"][0]["sigStatus"][0]["status"] = "processing"
    assert again.trigger("tlc", {"payload": ssem})["identification"]["sequenceNumber"] == (last["ssem"] + 1) % 128
    rtcm = example("rtcmem")
    rtcm["rtcmc"]["msgs"] = rtcm["rtcmc"]["msgs"][:1]
    assert again.trigger("gpc", {"payload": rtcm})["identification"]["msgCnt"] == (last["gpc"] + 1) % 128


def test_deleted_store_starts_with_a_warning_and_numbers_continue(make_layer, state_dir, caplog):
    layer = make_layer()
    last = _issue(layer)
    layer.close()
    _remove_store(state_dir)
    with caplog.at_level("WARNING", logger="rsu.services.store"):
        again = make_layer()
    assert again.stats()["counts"]["store_lost"] == 1
    assert any("the store was missing" in r.getMessage() for r in caplog.records)
    _forward(again, last)
    # the warning is given once: the next start finds store and cursor file in step
    again.close()
    third = make_layer()
    assert "store_lost" not in third.stats()["counts"]


def test_lost_wal_file_is_reported_and_numbers_continue(make_layer, state_dir, caplog):
    layer = make_layer()
    layer.trigger("rlt", {"payload": _mapem(0)})
    layer.store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the main file holds this much
    last = _issue_more(layer)
    # the daemon is killed and its WAL file is lost (not copied with the main file, say)
    shutil.copy(state_dir / DB_NAME, state_dir / "main-only")
    layer.close()
    _remove_store(state_dir)
    shutil.move(state_dir / "main-only", state_dir / DB_NAME)
    with caplog.at_level("WARNING", logger="rsu.services.store"):
        again = make_layer()
    assert again.stats()["counts"]["store_behind"] == 1
    assert any("acknowledged change(s) are missing" in r.getMessage() for r in caplog.records)
    assert {e["id"] for e in again.list()} == {"1201"}  # what the main file held
    _forward(again, last)


def _issue_more(layer) -> dict:
    rev = 0
    for n in (1, 2, 3):
        rev = _revision(layer.update("rlt", "1201", {"payload": _mapem(n)}))
    numbers = [
        layer.trigger("ivi", {"payload": new_ivim()})["identification"]["iviIdentificationNumber"] for _ in range(2)
    ]
    return {"rev": rev, "ivi": max(numbers)}


def test_damaged_store_is_refused_naming_the_file_and_the_repair(make_layer, state_dir):
    layer = make_layer()
    _issue(layer)
    layer.store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    layer.close()
    path = state_dir / DB_NAME
    data = bytearray(path.read_bytes())
    assert len(data) >= 3 * 4096
    data[4096 : 3 * 4096] = b"\xa5" * (2 * 4096)  # pages 2 and 3: table b-trees
    path.write_bytes(bytes(data))
    with pytest.raises(StoreDamaged) as e:
        make_layer()
    assert str(path) in str(e.value)
    assert f"rsu store recover --state-dir {state_dir}" in str(e.value)


def test_garbage_store_file_is_refused_not_replaced(make_layer, state_dir):
    path = state_dir / DB_NAME
    state_dir.mkdir(parents=True)
    path.write_bytes(b"this is not an SQLite file" * 200)
    with pytest.raises(StoreDamaged) as e:
        make_layer()
    assert "rsu store recover" in str(e.value)
    assert path.read_bytes().startswith(b"this is not")  # left alone for the operator


@pytest.mark.parametrize("damage", ["delete", "garble", "empty", "wrong-shape"])
def test_lost_or_garbled_cursor_file_is_rebuilt_from_the_store(make_layer, state_dir, caplog, damage):
    layer = make_layer()
    last = _issue(layer)
    layer.close()
    cfile = cursors.cursor_path(state_dir / DB_NAME)
    if damage == "delete":
        cfile.unlink()
    elif damage == "garble":
        cfile.write_bytes(cfile.read_bytes()[:40])
    elif damage == "empty":
        cfile.write_bytes(b"")
    else:
        cfile.write_text(json.dumps({"format": "rsu-cursors", "version": 1, "commit": -1, "counters": []}))
    with caplog.at_level("WARNING", logger="rsu.services.store"):
        again = make_layer()
    assert again.stats()["counts"]["cursor_file_rebuilt"] == 1
    assert any(str(cfile) in r.getMessage() for r in caplog.records)
    state = cursors.read(cfile)  # rebuilt at once, with every cursor of the store
    assert state.counters == again.store.cursors() and state.counters
    _forward(again, last)


def test_store_and_cursor_file_lost_one_after_the_other(make_layer, state_dir):
    """Either copy alone carries the numbers: lose the cursor file, restart, then lose the store."""
    layer = make_layer()
    last = _issue(layer)
    layer.close()
    cursors.cursor_path(state_dir / DB_NAME).unlink()
    make_layer().close()  # rebuilt from the store
    _remove_store(state_dir)
    _forward(make_layer(), last)


def test_wrapped_counters_continue_modulo(make_layer, state_dir):
    """MAPEM revision 126 -> 127 -> 0 -> 1 across a lost store; IVI numbers wrap within their range."""
    layer = make_layer(rules={"ivi_id_min": 1, "ivi_id_max": 3})
    v = _mapem(0)
    v["map"]["intersections"][0]["revision"] = 126  # carried over from another system
    assert _revision(layer.trigger("rlt", {"payload": v})) == 126
    assert _revision(layer.update("rlt", "1201", {"payload": _mapem(1)})) == 127
    assert _revision(layer.update("rlt", "1201", {"payload": _mapem(2)})) == 0
    numbers = []
    for _ in range(3):
        a = layer.trigger("ivi", {"payload": new_ivim()})
        numbers.append(a["identification"]["iviIdentificationNumber"])
        layer.terminate("ivi", a["id"], {"mode": "stop"})
    assert numbers == [1, 2, 3]
    serial = layer.store.cursors()["rlt.rev.1201"].serial
    assert serial == 3  # 126, 127, 0: three values issued
    layer.close()
    _remove_store(state_dir)
    again = make_layer(rules={"ivi_id_min": 1, "ivi_id_max": 3})
    assert again.stats()["counts"]["store_lost"] == 1
    assert _revision(again.trigger("rlt", {"payload": _mapem(3)})) == 1  # not 0, not 126: after 0
    assert again.trigger("ivi", {"payload": new_ivim()})["identification"]["iviIdentificationNumber"] == 1
    assert again.store.cursors()["rlt.rev.1201"].serial == 4


def test_store_further_ahead_than_an_old_cursor_file_wins(make_layer, state_dir):
    """An old copy of the cursor file put back (say, from a backup) never pulls numbers back."""
    layer = make_layer()
    layer.trigger("rlt", {"payload": _mapem(0)})
    cfile = cursors.cursor_path(state_dir / DB_NAME)
    old = cfile.read_bytes()
    rev = 0
    for n in (1, 2, 3):
        rev = _revision(layer.update("rlt", "1201", {"payload": _mapem(n)}))
    layer.close()
    cfile.write_bytes(old)
    again = make_layer()
    assert _revision(again.update("rlt", "1201", {"payload": _mapem(7)})) == rev + 1


def test_cursor_file_is_written_before_the_change_is_acknowledged(make_layer, state_dir):
    layer = make_layer()
    answer = layer.trigger("ivi", {"payload": new_ivim()})
    state = cursors.read(cursors.cursor_path(state_dir / DB_NAME))
    assert state.counters["ivi.next.FR57"].value == answer["identification"]["iviIdentificationNumber"] + 1
    assert state.pending == layer.store.commit_serial


def unwritable(fd: int) -> None:
    """Make ``fd`` refuse writes (a real EBADF from the kernel, as a failing disk would give an error)."""
    ro = os.open(os.devnull, os.O_RDONLY)
    os.dup2(ro, fd)
    os.close(ro)


@pytest.mark.parametrize("what", ["file", "log"])
def test_cursor_file_write_failure_refuses_the_request(make_layer, state_dir, what):
    """The whole file (the first change after a start) or the change log (the changes after it) cannot be
    written: the request is refused, nothing changed; the next one goes through."""
    layer = make_layer()
    cfile = cursors.cursor_path(state_dir / DB_NAME)
    tmp = cfile.with_name(cfile.name + ".tmp")
    if what == "file":
        tmp.mkdir()  # the temp file cannot be created: the write fails like a full disk would
    else:
        layer.trigger("rlt", {"payload": _mapem(0)})  # the file is written; the next change goes to the log
        unwritable(layer.store._cursor_writer._log_fd)
    try:
        with pytest.raises(ServiceError) as e:
            layer.trigger("ivi", {"payload": new_ivim()})
        assert e.value.code == "store_failure" and "cursor file" in e.value.reason
        assert [e["service"] for e in layer.list()] == (["rlt"] if what == "log" else [])
    finally:
        if tmp.exists():
            tmp.rmdir()
    assert layer.trigger("ivi", {"payload": new_ivim()})["identification"]["iviIdentificationNumber"] == 1
    assert cursors.read(cfile).counters == layer.store.cursors()


def test_schema_1_store_is_migrated_with_its_counters(state_dir, make_layer):
    state_dir.mkdir(parents=True)
    db = sqlite3.connect(str(state_dir / DB_NAME))
    db.executescript("""
        CREATE TABLE messages (service TEXT NOT NULL, id TEXT NOT NULL, kind TEXT NOT NULL, state TEXT NOT NULL,
            payload BLOB, dissemination TEXT NOT NULL, anchor REAL, identification TEXT NOT NULL, data TEXT NOT NULL,
            generation INTEGER NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL,
            PRIMARY KEY (service, id));
        CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL, aux TEXT);
        INSERT INTO counters VALUES ('ivi.next.FR57', 41, NULL);
        PRAGMA user_version = 1;
    """)
    db.commit()
    db.close()
    layer = make_layer()
    assert layer.store.cursors()["ivi.next.FR57"] == cursors.Cursor(41, None, 1)
    assert layer.trigger("ivi", {"payload": new_ivim()})["identification"]["iviIdentificationNumber"] == 41


def test_repair_lock_excludes_the_daemon(make_layer, state_dir):
    layer = make_layer()
    with pytest.raises(StoreBusy, match="running rsu"):
        Store(state_dir, exclusive=True)
    layer.close()
    repair = Store(state_dir, exclusive=True)
    try:
        with pytest.raises(StoreBusy, match="repair command"):
            Store(state_dir)
    finally:
        repair.close()


def test_every_commit_is_synced(layer):
    """synchronous=FULL (2): an acknowledged change survives a power cut, not only kill -9."""
    assert layer.store._db.execute("PRAGMA synchronous").fetchone()[0] == 2
    assert layer.store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
