"""The persisted store-and-repeat table: restarts, operator operations, all-or-nothing requests."""

from __future__ import annotations

import sqlite3

import pytest

from rsu.clock import iso_utc, timestamp_its
from rsu.services.errors import ServiceError
from rsu.services.store import DB_NAME, Store
from services.support import by_service, example, new_ivim


def test_restart_resumes_every_entry_with_same_ids_and_schedule(make_layer, codec, clock):
    layer = make_layer()
    layer.trigger("rlt", {"payload": example("mapem")})
    ivi = layer.trigger(
        "ivi", {"payload": new_ivim(), "dissemination": {"repetition_interval_s": 0.5, "traffic_class": 7}}
    )
    layer.trigger("gpc", {"payload": example("rtcmem")})
    layer.trigger("tlc", {"payload": example("srem")})
    layer.trigger("tlm", {"payload": example("spatem")})
    t0 = clock.now()
    first = {(t.service, t.id): t.pdu for t in layer.due()}
    spatem = {k for k in first if k[0] == "tlm"}
    assert spatem
    first = {k: v for k, v in first.items() if k not in spatem}
    before = {(e["service"], e["id"]): e["identification"] for e in layer.list()}
    layer.close()

    clock.set(t0 + 7.2)  # the daemon was down for a while
    again = make_layer()
    after = {(e["service"], e["id"]): e["identification"] for e in again.list()}
    assert after == before
    assert again.get("ivi", ivi["id"])["dissemination"]["traffic_class"] == 7
    # back on the air at once: every entry is sent right away (a repetition: the same bytes as before)
    assert again.next_deadline() == pytest.approx(t0 + 7.2)
    resent = again.due()
    # (never a SPATEM state: it is not repeated, and an old state must not go out again)
    assert {(t.service, t.id): t.pdu for t in resent} == first and not any(t.fresh for t in resent)
    # then drift-free resume: the next slots are on the old grid (anchor + k * interval)
    assert again.next_deadline() == pytest.approx(t0 + 7.5)
    clock.set(t0 + 7.5)
    txs = again.due()
    assert [(t.service, round(t.slot - t0, 6)) for t in txs] == [("ivi", 7.5)]
    assert txs[0].pdu == first[("ivi", ivi["id"])]  # the same bytes as before the restart
    clock.set(t0 + 8)
    assert {(t.service, t.id): t.pdu for t in again.due()} == first


class CountingCodec:
    """The real codec, counting decodes."""

    def __init__(self, codec) -> None:
        self.codec = codec
        self.decodes = 0

    def decode(self, data):
        self.decodes += 1
        return self.codec.decode(data)

    def __getattr__(self, name):
        return getattr(self.codec, name)


def _restart(layer, clock, codec):
    from rsu.services.layer import ServiceLayer, ServicesConfig
    from services.support import PROVIDER, STATION

    return ServiceLayer(
        ServicesConfig(layer.config.state_dir, station_id=STATION, ivi_provider=PROVIDER), clock=clock, codec=codec
    )


def _values(layer) -> dict:
    return {(n, i): e.value for n, s in layer.services.items() for i, e in s.entries.items()}


def test_restart_decodes_each_payload_once_to_the_same_values(make_layer, codec, clock):
    """A restart decodes each stored payload once: the same value as before, content comparisons unchanged."""
    layer = make_layer()
    layer.trigger("rlt", {"payload": example("mapem")})
    layer.trigger("ivi", {"payload": new_ivim()})
    values = _values(layer)
    assert all(e.value_json is None for e in layer.store.entries())  # the value is not written twice
    layer.close()
    counting = CountingCodec(codec)
    again = _restart(layer, clock, counting)
    try:
        assert counting.decodes == 2
        assert _values(again) == values
        assert again.update("rlt", "1201", {"payload": example("mapem")}).get("unchanged") is True
    finally:
        again.close()


def test_rows_of_earlier_versions_are_read_from_their_saved_values(make_layer, codec, clock):
    """A store written by an earlier version keeps each value as JSON bound to its payload: an upgraded
    rsu reads it (no decode), the same values, content comparisons unchanged; a value that is not its
    payload's (digest) is not used: that payload is decoded."""
    import sqlite3

    from rsu.services.model import value_to_json
    from rsu.services.store import db_path

    layer = make_layer()
    layer.trigger("rlt", {"payload": example("mapem")})
    ivi = layer.trigger("ivi", {"payload": new_ivim()})
    values = _values(layer)
    layer.close()
    with sqlite3.connect(db_path(layer.config.state_dir)) as db:
        for service, ident, payload in db.execute("SELECT service, id, payload FROM messages").fetchall():
            value = values[(service, ident)] if service == "rlt" else {"header": {}, "not": "this payload's"}
            bound = payload if service == "rlt" else b"another payload"
            db.execute(
                "UPDATE messages SET value_json = ? WHERE service = ? AND id = ?",
                (value_to_json(value, bound), service, ident),
            )
    counting = CountingCodec(codec)
    again = _restart(layer, clock, counting)
    try:
        assert counting.decodes == 1  # the IVI's saved value belongs to another payload
        assert _values(again) == values
        assert again.update("rlt", "1201", {"payload": example("mapem")}).get("unchanged") is True
        assert again.update("ivi", ivi["id"], {"payload": new_ivim()}).get("unchanged") is True
    finally:
        again.close()


def test_restart_never_reuses_ivi_numbers_nor_resets_mapem_revisions(make_layer, codec, clock):
    layer = make_layer()
    numbers = [
        layer.trigger("ivi", {"payload": new_ivim()})["identification"]["iviIdentificationNumber"] for _ in range(3)
    ]
    layer.terminate("ivi", f"FR57-{numbers[-1]}", {"mode": "stop"})
    layer.trigger("rlt", {"payload": example("mapem")})
    layer.close()
    again = make_layer()
    n = again.trigger("ivi", {"payload": new_ivim()})["identification"]["iviIdentificationNumber"]
    assert n == numbers[-1] + 1
    v = example("mapem")
    v["map"]["intersections"][0]["laneSet"][0]["laneAttributes"]["sharedWith"] = "0100"
    answer = again.update("rlt", "1201", {"payload": v})
    assert answer["identification"]["intersections"][0]["revision"] == 4
    assert answer["identification"]["msgIssueRevision"] == 4


def test_operator_list_get_replace_delete(layer, codec, clock):
    created = layer.trigger("ivi", {"payload": new_ivim()})
    ident = created["id"]
    [row] = layer.list()
    assert (row["service"], row["id"], row["message"], row["state"]) == ("ivi", ident, "ivim", "active")
    assert row["identification"] == created["identification"]
    got = layer.get("ivi", ident)
    assert (
        got["payload"]["ivi"]["mandatory"]["iviIdentificationNumber"]
        == created["identification"]["iviIdentificationNumber"]
    )
    _, value = codec.from_jer(got["payload"])
    assert codec.encode(value).hex() == got["pdus_hex"][0]
    layer.update("ivi", ident, {"payload": new_ivim(validTo=timestamp_its(clock.now() + 600))})  # replace
    assert layer.get("ivi", ident)["window"]["stop"] == iso_utc(clock.now() + 600)
    layer.terminate("ivi", ident, {"mode": "stop"})  # delete
    assert layer.list() == []
    store = Store(layer.store.path)
    assert store.entries() == []
    store.close()


def test_expiry_is_persisted(make_layer, clock):
    layer = make_layer()
    layer.trigger("ivi", {"payload": new_ivim(validTo=timestamp_its(clock.now() + 2))})
    clock.advance(3)
    layer.due()
    store = Store(layer.store.path)
    assert store.entries() == []
    store.close()


def test_request_is_all_or_nothing_when_the_store_fails(make_layer, state_dir, clock):
    """A real store failure (another writer holds the database) applies nothing: no entry, no number, no send."""
    layer = make_layer(busy_timeout_ms=50)
    layer.trigger("rlt", {"payload": example("mapem")})
    layer.due()
    blocker = sqlite3.connect(str(state_dir / DB_NAME), isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(ServiceError) as e:
            layer.trigger("ivi", {"payload": new_ivim()})
        assert e.value.code == "store_failure" and "locked" in e.value.reason
        with pytest.raises(ServiceError):
            layer.update("rlt", "1201", {"payload": example("mapem"), "dissemination": {"repetition_interval_s": 2}})
        assert [e["service"] for e in layer.list()] == ["rlt"]
        assert layer.get("rlt", "1201")["dissemination"]["repetition_interval_s"] == 1.0
        assert by_service(layer.due(), "ivi") == []
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    answer = layer.trigger("ivi", {"payload": new_ivim()})
    assert answer["identification"]["iviIdentificationNumber"] == 1  # the failed request took no number


def test_refused_request_changes_nothing(make_layer):
    """An SSP refusal after the number was chosen still leaves the cursor where it was."""
    from services.support import permission_check

    layer = make_layer(permission_check=permission_check({"regulatory"}))
    v = new_ivim()
    v["ivi"]["optional"].append(
        {"tc": [{"relevanceZoneIds": [2], "text": [{"language": "8000", "textContent": "x"}], "data": ""}]}
    )
    with pytest.raises(ServiceError):
        layer.trigger("ivi", {"payload": v})
    assert layer.trigger("ivi", {"payload": new_ivim()})["identification"]["iviIdentificationNumber"] == 1


def test_store_file_is_wal_and_intact(layer, state_dir):
    layer.trigger("rlt", {"payload": example("mapem")})
    db = sqlite3.connect(str(state_dir / DB_NAME))
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT service, id, kind, state FROM messages").fetchall() == [
        ("rlt", "1201", "mapem", "active")
    ]
    db.close()


def test_unreadable_row_is_skipped_not_fatal(make_layer, state_dir):
    layer = make_layer()
    layer.trigger("rlt", {"payload": example("mapem")})
    layer.trigger("gpc", {"payload": example("rtcmem")})
    layer.close()
    db = sqlite3.connect(str(state_dir / DB_NAME))
    db.execute("UPDATE messages SET payload = ? WHERE service = 'gpc'", (b"\x05\x01garbage",))
    db.commit()
    db.close()
    again = make_layer()
    assert [e["id"] for e in again.list()] == ["1201"]
    assert again.stats()["counts"]["restore_failed"] == 1


@pytest.mark.parametrize(("durability", "synchronous", "synced"), [("power_cut", 2, True), ("process_crash", 1, False)])
def test_store_durability_sets_how_commits_reach_the_disk(tmp_path, durability, synchronous, synced):
    """power_cut (the default): SQLite synchronous=FULL and the cursor log fdatasync-ed per change;
    process_crash: synchronous=NORMAL, the log written but not synced (kill -9 safe: test_restart.py)."""
    from rsu.services.store import Store, StoreError

    store = Store(tmp_path, durability=durability)
    try:
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == synchronous
        assert store._cursor_writer.sync is synced
    finally:
        store.close()
    default = Store(tmp_path)
    try:
        assert default.durability == "power_cut" and default._conn.execute("PRAGMA synchronous").fetchone()[0] == 2
    finally:
        default.close()
    with pytest.raises(StoreError, match="durability 'fast'"):
        Store(tmp_path, durability="fast")
