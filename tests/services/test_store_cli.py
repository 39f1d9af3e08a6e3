"""``rsu store check | recover | export | import`` on real state directories (and a real kill -9)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rsu.cli.main import main
from rsu.services import cursors
from rsu.services.store import DB_NAME, StoreDamaged
from services.support import example, new_ivim
from services.test_restart import kill_worker_after


def rsu(*argv: str) -> int:
    return main(["store", *argv])


def _fill(layer, n_ivi: int = 40) -> dict[str, int]:
    layer.trigger("rlt", {"payload": example("mapem")})
    numbers = {}
    for _ in range(n_ivi):
        a = layer.trigger("ivi", {"payload": new_ivim()})
        numbers[a["id"]] = a["identification"]["iviIdentificationNumber"]
    layer.store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return numbers


def _damage_page_holding(path: Path, marker: bytes, also: bytes) -> int:
    """Overwrite the table page that holds ``marker`` next to ``also`` (not an index page); return its number."""
    data = bytearray(path.read_bytes())
    for page in range(1, len(data) // 4096):
        chunk = data[page * 4096 : (page + 1) * 4096]
        if marker in chunk and also in chunk:
            data[page * 4096 : (page + 1) * 4096] = os.urandom(4096)
            path.write_bytes(bytes(data))
            return page
    raise AssertionError("no such page")


def test_check_healthy_then_damaged(make_layer, state_dir, capsys):
    layer = make_layer()
    _fill(layer, 5)
    assert rsu("check", "--state-dir", str(state_dir)) == 0  # fine while the daemon has it open
    out = capsys.readouterr().out
    assert "ok, 6 entries (ivi 5, rlt 1)" in out
    layer.close()
    _damage_page_holding(state_dir / DB_NAME, b"FR57-3", b"provider")
    assert rsu("check", "--state-dir", str(state_dir)) == 2
    out = capsys.readouterr().out
    assert "problem:" in out and f"rsu store recover --state-dir {state_dir}" in out


def test_recover_salvages_the_readable_rows_and_numbers_continue(make_layer, state_dir, capsys):
    layer = make_layer()
    numbers = _fill(layer)
    layer.close()
    page = _damage_page_holding(state_dir / DB_NAME, b"FR57-20", b"provider")
    with pytest.raises(StoreDamaged):
        make_layer()
    assert rsu("recover", "--state-dir", str(state_dir)) == 0
    out = capsys.readouterr().out
    assert "recovered" in out and "unreadable range(s) skipped" in out, out
    [aside] = [f for f in state_dir.glob(f"{DB_NAME}.damaged-*") if not f.name.endswith(("-wal", "-shm"))]
    assert len(aside.name) == len(f"{DB_NAME}.damaged-20250514T080000Z")
    assert bytearray(aside.read_bytes())[page * 4096 : page * 4096 + 16]  # the damaged file, kept as it was
    again = make_layer()  # starts on the fresh store
    ids = {e["id"] for e in again.list()}
    assert "1201" in ids
    salvaged = ids & set(numbers)
    # what is lost is about one page of rows (a 4 KiB page holds about 16 of these IVI rows)
    assert "FR57-20" not in salvaged and len(numbers) - 20 <= len(salvaged) < len(numbers)
    n = again.trigger("ivi", {"payload": new_ivim()})["identification"]["iviIdentificationNumber"]
    assert n == max(numbers.values()) + 1  # the cursor did not go back with the lost rows
    assert rsu("check", "--state-dir", str(state_dir)) == 0


def test_truncated_store_is_refused_then_recovered_and_numbers_continue(make_layer, state_dir, capsys):
    layer = make_layer()
    numbers = _fill(layer, 20)
    rev = layer.get("rlt", "1201")["identification"]["intersections"][0]["revision"]
    layer.close()
    path = state_dir / DB_NAME
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])  # cut in the middle of a page run
    with pytest.raises(StoreDamaged):
        make_layer()
    assert rsu("recover", "--state-dir", str(state_dir)) == 0
    capsys.readouterr()
    again = make_layer()
    assert (
        again.trigger("ivi", {"payload": new_ivim()})["identification"]["iviIdentificationNumber"]
        == max(numbers.values()) + 1
    )
    v = example("mapem")
    v["map"]["intersections"][0]["laneSet"][0]["nodeList"]["nodes"][0]["delta"]["node-XY3"]["x"] += 7
    if "1201" in {e["id"] for e in again.list("rlt")}:
        answer = again.update("rlt", "1201", {"payload": v})
    else:
        answer = again.trigger("rlt", {"payload": v})
    assert answer["identification"]["intersections"][0]["revision"] == (rev + 1) % 128


def test_recover_a_file_that_is_not_a_database(make_layer, state_dir, capsys):
    layer = make_layer()
    numbers = _fill(layer, 3)
    layer.close()
    (state_dir / DB_NAME).write_bytes(b"\x00garbage" * 3000)
    for side in ("-wal", "-shm"):
        (state_dir / (DB_NAME + side)).unlink(missing_ok=True)
    assert rsu("recover", "--state-dir", str(state_dir)) == 0
    assert "recovered 0 entries" in capsys.readouterr().out
    again = make_layer()
    assert (
        again.trigger("ivi", {"payload": new_ivim()})["identification"]["iviIdentificationNumber"]
        == max(numbers.values()) + 1
    )


def test_recover_leaves_an_intact_store_alone_and_refuses_while_rsu_runs(make_layer, state_dir, capsys):
    layer = make_layer()
    _fill(layer, 2)
    assert rsu("recover", "--state-dir", str(state_dir)) == 2
    assert "running rsu" in capsys.readouterr().err
    layer.close()
    assert rsu("recover", "--state-dir", str(state_dir)) == 0
    assert "intact" in capsys.readouterr().out
    assert not list(state_dir.glob("*.damaged-*"))


def test_export_import_moves_the_table_to_a_new_unit(make_layer, state_dir, tmp_path, clock, codec, capsys):
    layer = make_layer()
    numbers = _fill(layer, 3)
    before = {(e["service"], e["id"]): e["identification"] for e in layer.list()}
    out = tmp_path / "export.json"
    assert rsu("export", "--state-dir", str(state_dir), "-o", str(out)) == 0  # while it runs
    layer.close()
    new_unit = tmp_path / "new-unit"
    assert rsu("import", str(out), "--state-dir", str(new_unit)) == 0
    assert "imported 4 entries (ivi 3, rlt 1)" in capsys.readouterr().out
    from rsu.services.store import Store

    imported = Store(new_unit)
    try:  # each row carries its value, so the first start does not decode every payload
        assert all(e.value_json for e in imported.entries())
    finally:
        imported.close()
    from rsu.services.layer import ServiceLayer, ServicesConfig
    from services.support import PROVIDER, STATION

    moved = ServiceLayer(ServicesConfig(new_unit, station_id=STATION, ivi_provider=PROVIDER), clock=clock, codec=codec)
    try:
        assert {(e["service"], e["id"]): e["identification"] for e in moved.list()} == before
        assert (
            moved.trigger("ivi", {"payload": new_ivim()})["identification"]["iviIdentificationNumber"]
            == max(numbers.values()) + 1
        )
    finally:
        moved.close()


def test_import_refuses_to_move_cursors_backwards(make_layer, state_dir, tmp_path, capsys):
    layer = make_layer()
    _fill(layer, 2)
    out = tmp_path / "old.json"
    assert rsu("export", "--state-dir", str(state_dir), "-o", str(out)) == 0
    layer.trigger("ivi", {"payload": new_ivim()})  # the cursor moves on after the export
    layer.close()
    cfile = cursors.cursor_path(state_dir / DB_NAME)
    before = (_content(state_dir), cfile.read_bytes())
    assert rsu("import", str(out), "--state-dir", str(state_dir)) == 2
    err = capsys.readouterr().err
    assert "counters.ivi.next.FR57: the store is further ahead" in err and "nothing was imported" in err
    assert (_content(state_dir), cfile.read_bytes()) == before


def _content(state_dir: Path) -> dict:
    from rsu.services.storetool import export

    doc = export(state_dir)
    del doc["exported_at"]
    return doc


def test_import_lists_every_problem_and_changes_nothing(make_layer, state_dir, tmp_path, capsys):
    layer = make_layer()
    _fill(layer, 2)
    out = tmp_path / "export.json"
    assert rsu("export", "--state-dir", str(state_dir), "-o", str(out)) == 0
    layer.close()
    doc = json.loads(out.read_text())
    assert [e["kind"] for e in doc["entries"]] == ["ivim", "ivim", "mapem"]
    doc["entries"][2]["payload"] = doc["entries"][1]["payload"]  # an IVIM where a MAPEM belongs
    doc["entries"][1]["generation"] = "two"
    doc["entries"][0]["kind"] = "spatem"
    doc["counters"]["ivi.next.FR57"]["serial"] = 0
    out.write_text(json.dumps(doc))
    fresh = tmp_path / "fresh"
    assert rsu("import", str(out), "--state-dir", str(fresh)) == 2
    err = capsys.readouterr().err
    for expected in (
        "entries[2].payload: encodes IVIM, expected MAPEM",
        "entries[1].generation:",
        "entries[0].kind: 'spatem' is not a message of service 'ivi'",
        "counters.ivi.next.FR57: serial 0",
        "5 problem(s); nothing was imported",
    ):
        assert expected in err, err
    assert not (fresh / DB_NAME).exists()


def test_kill_9_of_a_writer_then_check_export_and_lost_store(state_dir, tmp_path, capsys):
    """A real writer process is SIGKILLed mid-work: check finds the store intact, export has every
    acknowledged number, and even with the store then deleted the numbers continue."""
    _, acks = kill_worker_after(state_dir, 8)
    assert rsu("check", "--state-dir", str(state_dir)) == 0, capsys.readouterr().out
    capsys.readouterr()
    assert rsu("export", "--state-dir", str(state_dir)) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["counters"]["ivi.next.FR57"]["value"] > max(a["ivi_number"] for a in acks)
    for side in ("", "-wal", "-shm"):
        (state_dir / (DB_NAME + side)).unlink(missing_ok=True)
    assert rsu("check", "--state-dir", str(state_dir)) == 2
    assert "acknowledged changes are gone" in capsys.readouterr().out
    from rsu.clock import SystemClock
    from rsu.services.layer import ServiceLayer, ServicesConfig
    from services.support import PROVIDER, STATION

    layer = ServiceLayer(ServicesConfig(state_dir, station_id=STATION, ivi_provider=PROVIDER), clock=SystemClock())
    try:
        assert layer.stats()["counts"]["store_lost"] == 1
        n = layer.trigger("ivi", {"payload": new_ivim(validFrom=None, validTo=None)})["identification"][
            "iviIdentificationNumber"
        ]
        assert n > max(a["ivi_number"] for a in acks)
        v = example("mapem")
        v["map"]["intersections"][0]["laneSet"][0]["nodeList"]["nodes"][0]["delta"]["node-XY3"]["x"] += 1000
        rev = layer.trigger("rlt", {"payload": v})["identification"]["intersections"][0]["revision"]
        last = acks[-1]["mapem_revision"]
        assert rev in ((last + 1) % 128, (last + 2) % 128)  # after the last acknowledged (or the one in flight)
    finally:
        layer.close()


def test_store_commands_take_the_state_dir_of_a_config_file(make_layer, state_dir, tmp_path, capsys):
    layer = make_layer()
    _fill(layer, 1)
    layer.close()
    cfg = tmp_path / "rsu.yaml"
    cfg.write_text(f"state_dir: {state_dir}\n")
    assert rsu("check", "--config", str(cfg), "--json") == 0
    assert json.loads(capsys.readouterr().out)["store"] == str(state_dir / DB_NAME)


@pytest.mark.slow
def test_daemon_refuses_a_damaged_store_with_exit_2_naming_the_repair(tmp_path):
    """`rsu run` on a damaged store: exit 2 (systemd does not restart it in a loop), the log names the
    file and the repair command; after `rsu store recover` it starts."""
    from tests.ops.daemonproc import RsuDaemon, group_and_port

    group, port = group_and_port()
    d = RsuDaemon(tmp_path, group=group, port=port)
    store = d.dir / "state" / DB_NAME
    store.parent.mkdir(parents=True)
    store.write_bytes(b"\x13garbage" * 2000)
    with pytest.raises(RuntimeError, match="exited with 2"):
        d.start()
    assert f"{store}: the store is damaged" in d.log() and "rsu store recover --state-dir" in d.log()
    assert rsu("recover", "--state-dir", str(store.parent)) == 0
    d.start()
    try:
        assert d.get("/v1/messages")[0] == 200
    finally:
        assert d.stop() == 0
