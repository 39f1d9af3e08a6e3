"""What ``rsu store check | recover | export | import`` do, without the command line.

* :func:`check` reads the store read-only (also while the daemon runs) and says what a start
  would find: damage, a lost or stale store, a lost cursor file, rows a start would skip.
* :func:`recover` salvages what SQLite can still read of a damaged store into a fresh file,
  takes the identifier cursors further ahead from the cursor file, and keeps the damaged file
  aside as ``services.sqlite3.damaged-YYYYMMDDTHHMMSSZ`` (with its ``-wal``/``-shm``). The
  daemon must be stopped (the repair lock excludes it).
* :func:`export` writes every entry and cursor as JSON (read-only, also while the daemon runs).
* :func:`import_store` checks a whole export first (every entry decodes, every field has its
  type, no cursor moves backwards) and only then writes it, in one transaction.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rsu import catalog
from rsu.clock import iso_utc
from rsu.services import cursors as cursorfile
from rsu.services.cursors import Cursor, CursorFileError, CursorState
from rsu.services.model import value_to_json
from rsu.services.store import (
    ENTRY_COLUMNS,
    SCHEMA,
    SCHEMA_VERSION,
    Store,
    StoredEntry,
    db_path,
    entry_of_row,
    lock_store,
    put_entry,
)

if TYPE_CHECKING:
    from rsu.pipeline.codec import Codec

EXPORT_FORMAT = "rsu-store-export"
EXPORT_VERSION = 1
SERVICES = set(catalog.SERVICES)
STATES = {"active", "terminating"}


class StoreToolError(Exception):
    """A refused operation; ``problems`` lists every reason (nothing was changed)."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


# ============================================================================ reading, read-only


def _open_ro(p: Path) -> sqlite3.Connection:
    db = sqlite3.connect(p.resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None)
    db.execute("PRAGMA busy_timeout = 2000")
    return db


def _read_cursors(db: sqlite3.Connection) -> dict[str, Cursor]:
    cols = {r[1] for r in db.execute("PRAGMA table_info(counters)").fetchall()}
    serial = "serial" if "serial" in cols else "1"
    return {
        r[0]: Cursor(r[1], r[2], r[3])
        for r in db.execute(f"SELECT name, value, aux, {serial} FROM counters").fetchall()
    }


def _read_commit(db: sqlite3.Connection) -> int:
    if not db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone():
        return 0
    row = db.execute("SELECT value FROM meta WHERE name = 'commit'").fetchone()
    return int(row[0]) if row else 0


def _cursor_file(p: Path) -> tuple[CursorState | None, str | None]:
    try:
        return cursorfile.read(cursorfile.cursor_path(p)), None
    except CursorFileError as e:
        return None, str(e)


def merge_cursors(a: dict[str, Cursor], b: dict[str, Cursor]) -> dict[str, Cursor]:
    """Counter by counter, the copy further ahead (``b`` wins a tie, as the cursor file does at start)."""
    out = dict(a)
    for name, c in b.items():
        mine = out.get(name)
        if c.ahead_of(mine) or (mine is not None and c.serial == mine.serial):
            out[name] = c
    return out


def check(path: str | Path, codec: Codec | None = None) -> dict[str, Any]:
    """What a start would find, as a report: ``ok`` (bool), ``problems`` and ``actions`` (lists of text)."""
    p = db_path(path)
    cp = cursorfile.cursor_path(p)
    wal = p.with_name(p.name + "-wal")
    report: dict[str, Any] = {
        "store": str(p),
        "cursor_file": str(cp),
        "exists": p.exists(),
        "size": p.stat().st_size if p.exists() else None,
        "wal_size": wal.stat().st_size if wal.exists() else None,
    }
    problems: list[str] = []
    actions: list[str] = []
    file_state, file_problem = _cursor_file(p)
    report["cursor_file_state"] = (
        "missing" if file_state is None and file_problem is None else "unreadable" if file_state is None else "ok"
    )
    report["cursor_file_commit"] = file_state.commit if file_state else None
    store_cursors: dict[str, Cursor] = {}
    commit = 0
    if report["exists"] and report["size"]:
        try:
            db = _open_ro(p)
            try:
                report["integrity"] = "; ".join(str(r[0]) for r in db.execute("PRAGMA integrity_check(20)"))
                report["schema"] = db.execute("PRAGMA user_version").fetchone()[0]
                if report["integrity"] == "ok":
                    rows = db.execute(f"SELECT {ENTRY_COLUMNS} FROM messages ORDER BY service, id").fetchall()
                    store_cursors = _read_cursors(db)
                    commit = _read_commit(db)
                    entries, unusable = _usable_rows(rows, codec)
                    report["entries"] = _per_service(entries)
                    report["unusable_rows"] = unusable
                    if unusable:
                        problems.append(
                            f"{len(unusable)} row(s) a start skips (left in the store): " + ", ".join(unusable)
                        )
                        actions.append(
                            "trigger those messages again, then end the old rows with "
                            "`rsu store recover --force` (which keeps only usable rows)"
                        )
            finally:
                db.close()
        except sqlite3.Error as e:
            report["integrity"] = str(e)
        if report["integrity"] != "ok":
            problems.append(f"{p}: damaged ({report['integrity']}); rsu refuses to start on it")
            actions.append(f"stop rsu, then `rsu store recover --state-dir {p.parent}`")
    else:
        report["integrity"] = "missing" if not report["exists"] else "empty"
    report["commit"] = commit
    report["counters"] = len(store_cursors)
    if file_problem is not None:
        problems.append(f"cursor file unusable: {file_problem}")
        actions.append("start rsu: it rebuilds the cursor file from the store")
    elif file_state is None and (commit or store_cursors):
        problems.append(f"{cp}: missing")
        actions.append("start rsu: it rebuilds the cursor file from the store")
    if file_state is not None and report["integrity"] in ("ok", "missing", "empty"):
        ahead = sorted(n for n, c in file_state.counters.items() if c.ahead_of(store_cursors.get(n)))
        report["cursors_ahead_in_file"] = ahead
        if file_state.commit > commit:
            lost = (
                "missing"
                if report["integrity"] == "missing"
                else "empty"
                if report["integrity"] == "empty"
                else f"behind ({commit} < {file_state.commit})"
            )
            problems.append(
                f"{p}: {lost}: acknowledged changes are gone; the cursor file keeps "
                f"{len(file_state.counters)} identifier cursors"
            )
            actions.append(
                "start rsu (identifiers continue from the cursor file), then trigger the lost messages "
                "again or `rsu store import` an export"
            )
    report["ok"] = not problems
    report["problems"] = problems
    report["actions"] = actions
    return report


def _usable_rows(rows: list[tuple[Any, ...]], codec: Codec | None) -> tuple[list[StoredEntry], list[str]]:
    """Rows a start can restore, and the ``service/id`` of those it would skip."""
    good, bad = [], []
    for r in rows:
        try:
            e = entry_of_row(r)
            kind = catalog.BY_NAME[e.kind]
            if e.service not in SERVICES or kind.service.lower() != e.service:
                raise ValueError("service")
            if codec is not None and e.payload is not None and codec.decode(e.payload).kind is not kind:
                raise ValueError("payload")
        except Exception:  # noqa: BLE001 - any way a row can be unusable
            bad.append(f"{r[0]}/{r[1]}")
            continue
        good.append(e)
    return good, bad


def _per_service(entries: list[StoredEntry]) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in entries:
        out[e.service] = out.get(e.service, 0) + 1
    return out


# ============================================================================ export / import


def _entry_json(e: StoredEntry) -> dict[str, Any]:
    return {
        "service": e.service,
        "id": e.id,
        "kind": e.kind,
        "state": e.state,
        "payload": e.payload.hex() if e.payload is not None else None,
        "dissemination": e.dissemination,
        "anchor": e.anchor,
        "identification": e.identification,
        "data": e.data,
        "generation": e.generation,
        "created_at": e.created_at,
        "updated_at": e.updated_at,
    }


def export(path: str | Path, now: float | None = None) -> dict[str, Any]:
    """Every entry and every cursor (the further-ahead copy of store and cursor file) as JSON."""
    p = db_path(path)
    if not p.exists() or not p.stat().st_size:
        raise StoreToolError(f"{p}: no store to export")
    try:
        db = _open_ro(p)
        try:
            rows = db.execute(f"SELECT {ENTRY_COLUMNS} FROM messages ORDER BY created_at, service, id").fetchall()
            store_cursors, commit = _read_cursors(db), _read_commit(db)
        finally:
            db.close()
    except sqlite3.Error as e:
        raise StoreToolError(
            f"{p}: cannot read the store ({e}); `rsu store recover` salvages what is readable"
        ) from None
    file_state, _ = _cursor_file(p)
    merged = merge_cursors(store_cursors, file_state.counters if file_state else {})
    entries = []
    for r in rows:
        try:
            entries.append(_entry_json(entry_of_row(r)))
        except (ValueError, TypeError):
            continue  # the row a start would skip too: not exported
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "exported_at": iso_utc(time.time() if now is None else now),
        "store": str(p),
        "commit": max(commit, file_state.commit if file_state else 0),
        "entries": entries,
        "counters": {k: merged[k].to_json() for k in sorted(merged)},
    }


def validate_export(data: Any, codec: Codec) -> tuple[list[StoredEntry], dict[str, Cursor], int, list[str]]:
    """Every problem of an export document, each with its path (nothing is read from the store)."""
    problems: list[str] = []
    if not isinstance(data, dict):
        return [], {}, 0, ["(document): not a JSON object"]
    if data.get("format") != EXPORT_FORMAT:
        problems.append(f"format: {data.get('format')!r} is not {EXPORT_FORMAT!r}")
    if data.get("version") != EXPORT_VERSION:
        problems.append(f"version: {data.get('version')!r} is not {EXPORT_VERSION}")
    commit = data.get("commit", 0)
    if not (isinstance(commit, int) and not isinstance(commit, bool) and commit >= 0):
        problems.append(f"commit: {commit!r} is not an integer >= 0")
        commit = 0
    entries: list[StoredEntry] = []
    raw_entries = data.get("entries")
    if not isinstance(raw_entries, list):
        problems.append("entries: not a list")
        raw_entries = []
    seen: set[tuple[str, str]] = set()
    for i, obj in enumerate(raw_entries):
        entry, why = _entry_of_json(obj, codec, f"entries[{i}]")
        problems.extend(why)
        if entry is not None:
            if (entry.service, entry.id) in seen:
                problems.append(f"entries[{i}].id: {entry.service}/{entry.id} appears twice")
            seen.add((entry.service, entry.id))
            entries.append(entry)
    counters: dict[str, Cursor] = {}
    raw_counters = data.get("counters")
    if not isinstance(raw_counters, dict):
        problems.append("counters: not an object")
        raw_counters = {}
    for name, obj in raw_counters.items():
        c, problem = cursorfile.cursor_of(obj)
        if c is None:
            problems.append(f"counters.{name}: {problem}")
        else:
            counters[name] = c
    return entries, counters, commit, problems


def _entry_of_json(obj: Any, codec: Codec, where: str) -> tuple[StoredEntry | None, list[str]]:
    if not isinstance(obj, dict):
        return None, [f"{where}: not an object"]
    problems = []
    fields: dict[str, type | tuple[type, ...]] = {
        "service": str,
        "id": str,
        "kind": str,
        "state": str,
        "dissemination": dict,
        "identification": dict,
        "data": dict,
        "generation": int,
        "created_at": (int, float),
        "updated_at": (int, float),
    }
    for name, typ in fields.items():
        v = obj.get(name)
        if not isinstance(v, typ) or isinstance(v, bool):
            problems.append(f"{where}.{name}: {'missing' if name not in obj else repr(v) + ' has the wrong type'}")
    unknown = set(obj) - set(fields) - {"payload", "anchor"}
    if unknown:
        problems.append(f"{where}: unknown member(s) {', '.join(sorted(unknown))}")
    if obj.get("anchor") is not None and (
        not isinstance(obj["anchor"], (int, float)) or isinstance(obj["anchor"], bool)
    ):
        problems.append(f"{where}.anchor: {obj['anchor']!r} is not a number or null")
    if problems:
        return None, problems
    if obj["service"] not in SERVICES:
        problems.append(f"{where}.service: {obj['service']!r} is not one of {', '.join(sorted(SERVICES))}")
    kind = catalog.BY_NAME.get(obj["kind"])
    if kind is None or kind.service.lower() != obj["service"]:
        problems.append(f"{where}.kind: {obj['kind']!r} is not a message of service {obj['service']!r}")
    if obj["state"] not in STATES:
        problems.append(f"{where}.state: {obj['state']!r} is not one of {', '.join(sorted(STATES))}")
    if not obj["id"]:
        problems.append(f"{where}.id: empty")
    payload = value_json = None
    if obj.get("payload") is not None:
        try:
            payload = bytes.fromhex(obj["payload"])
        except (TypeError, ValueError):
            problems.append(f"{where}.payload: not a hex string")
        else:
            if kind is not None:
                try:
                    decoded = codec.decode(payload)
                except Exception as e:  # noqa: BLE001 - any decoder refusal
                    problems.append(f"{where}.payload: not a valid UPER {kind.pdu}: {e}")
                else:
                    if decoded.kind is not kind:
                        problems.append(f"{where}.payload: encodes {decoded.kind.pdu}, expected {kind.pdu}")
                    value_json = value_to_json(decoded.value, payload)  # a start need not decode it again
    try:
        from rsu.services.params import Dissemination

        Dissemination.from_json(obj["dissemination"])
    except (KeyError, TypeError, ValueError) as e:
        problems.append(f"{where}.dissemination: not usable ({type(e).__name__}: {e})")
    if problems:
        return None, problems
    return StoredEntry(
        obj["service"],
        obj["id"],
        obj["kind"],
        obj["state"],
        payload,
        obj["dissemination"],
        obj.get("anchor"),
        obj["identification"],
        obj["data"],
        obj["generation"],
        float(obj["created_at"]),
        float(obj["updated_at"]),
        value_json,
    ), []


def import_store(path: str | Path, data: Any, codec: Codec) -> dict[str, Any]:
    """Import an export: all checked first, then one transaction; refused when a cursor would go back."""
    entries, counters, commit, problems = validate_export(data, codec)
    if problems:
        raise StoreToolError(f"the export has {len(problems)} problem(s); nothing was imported", problems)
    store = Store(path, exclusive=True)  # refuses a damaged store and a running daemon
    try:
        local = store.cursors()
        back = []
        for name, c in sorted(counters.items()):
            mine = local.get(name)
            if mine is not None and (mine.serial > c.serial or (mine.serial == c.serial and mine != c)):
                back.append(
                    f"counters.{name}: the store is further ahead (value {mine.value}, serial {mine.serial}; "
                    f"the export has value {c.value}, serial {c.serial}): importing would move it backwards"
                )
        if back:
            raise StoreToolError(
                f"{len(back)} cursor(s) would go backwards; nothing was imported (trigger those "
                "messages again instead: they get fresh identifiers)",
                back,
            )
        changed = {n: c for n, c in counters.items() if local.get(n) != c}
        store.replace_all(entries, changed, commit)
        return {
            "store": str(store.path),
            "entries": _per_service(entries),
            "counters_changed": len(changed),
            "commit": store.commit_serial,
        }
    finally:
        store.close()


# ============================================================================ recovery


def recover(
    path: str | Path, *, force: bool = False, codec: Codec | None = None, now: float | None = None
) -> dict[str, Any]:
    """Salvage a damaged store into a fresh file; keep the damaged one aside. The daemon must be stopped."""
    p = db_path(path)
    lock = lock_store(p, exclusive=True)
    try:
        health = check(p, codec)
        if health["integrity"] in ("missing", "empty"):
            raise StoreToolError(
                f"{p}: {health['integrity']}: nothing to salvage (start rsu: identifiers continue from the cursor file)"
            )
        if health["integrity"] == "ok" and not force:
            return {
                "store": str(p),
                "recovered": False,
                "reason": "the store is intact (give --force to rebuild it anyway)",
            }
        with tempfile.TemporaryDirectory(dir=p.parent, prefix=".recover-") as tmp:
            copy = Path(tmp) / p.name  # salvage reads a copy: the damaged file is never modified
            shutil.copy2(p, copy)
            for suffix in ("-wal",):
                side = p.with_name(p.name + suffix)
                if side.exists():
                    shutil.copy2(side, copy.with_name(copy.name + suffix))
            rows, skipped_ranges, store_cursors, commit = _salvage(copy)
        entries, unusable = _usable_rows(rows, codec)
        file_state, _ = _cursor_file(p)
        merged = merge_cursors(store_cursors, file_state.counters if file_state else {})
        commit = max(commit, file_state.commit if file_state else 0) + 1
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
        fresh = p.with_name(f".{p.name}.recovering")
        _write_fresh(fresh, entries, merged, commit)
        aside = p.with_name(f"{p.name}.damaged-{stamp}")
        for suffix in ("-wal", "-shm", ""):  # the main file last: a crash in between leaves no store, never a mix
            side = p.with_name(p.name + suffix)
            if side.exists():
                os.replace(side, aside.with_name(aside.name + suffix))
        os.replace(fresh, p)
        cursorfile.fsync_dir(p.parent)
        cursorfile.write(cursorfile.cursor_path(p), CursorState(commit, None, merged))
        return {
            "store": str(p),
            "recovered": True,
            "damaged_copy": str(aside),
            "entries": _per_service(entries),
            "rows_skipped": unusable,
            "damaged_ranges": skipped_ranges,
            "counters": len(merged),
            "counters_from_cursor_file": sorted(n for n in merged if merged[n] != store_cursors.get(n)),
            "commit": commit,
        }
    finally:
        os.close(lock)


def _salvage(p: Path) -> tuple[list[tuple[Any, ...]], int, dict[str, Cursor], int]:
    """Every row SQLite can still read: (message rows, damaged ranges skipped, counters, commit serial)."""
    try:
        db = sqlite3.connect(str(p), isolation_level=None)
    except sqlite3.Error:
        return [], 1, {}, 0
    try:
        rows, skipped = _rows(db, "messages", ENTRY_COLUMNS)
        cursors: dict[str, Cursor] = {}
        try:
            cols = {r[1] for r in db.execute("PRAGMA table_info(counters)").fetchall()}
        except sqlite3.Error:
            cols = set()
        crow, cskipped = _rows(db, "counters", "name, value, aux, " + ("serial" if "serial" in cols else "1"))
        for r in crow:
            c, _ = cursorfile.cursor_of({"value": r[1], "aux": r[2], "serial": r[3]})
            if c is not None and isinstance(r[0], str):
                cursors[r[0]] = c
        try:
            commit = _read_commit(db)
        except sqlite3.Error:
            commit = 0
        return rows, skipped + cskipped, cursors, commit
    finally:
        db.close()


def _rows(db: sqlite3.Connection, table: str, columns: str) -> tuple[list[tuple[Any, ...]], int]:
    """Walk ``table`` in rowid order; when a page cannot be read, jump over it and go on."""
    out: list[tuple[Any, ...]] = []
    last = -(1 << 63)
    skipped = 0
    while True:
        try:
            for r in db.execute(f"SELECT rowid, {columns} FROM {table} WHERE rowid > ? ORDER BY rowid", (last,)):
                out.append(r[1:])
                last = r[0]
            return out, skipped
        except sqlite3.Error:
            skipped += 1
            nxt = _next_readable_rowid(db, table, last)
            if nxt is None:
                return out, skipped
            last = nxt - 1


def _next_readable_rowid(db: sqlite3.Connection, table: str, last: int) -> int | None:
    jump = 1
    while jump < (1 << 62):
        try:
            row = db.execute(
                f"SELECT rowid FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT 1", (last + jump,)
            ).fetchone()
        except sqlite3.Error:
            jump *= 2
            continue
        return None if row is None else int(row[0])
    return None


def _write_fresh(fresh: Path, entries: list[StoredEntry], cursors: dict[str, Cursor], commit: int) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        fresh.with_name(fresh.name + suffix).unlink(missing_ok=True)
    db = sqlite3.connect(str(fresh), isolation_level=None)
    try:
        db.executescript(SCHEMA)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("BEGIN")
        for e in entries:
            put_entry(db, e)
        for name, c in cursors.items():
            db.execute(
                "INSERT INTO counters (name, value, aux, serial) VALUES (?, ?, ?, ?)", (name, c.value, c.aux, c.serial)
            )
        db.execute("INSERT INTO meta (name, value) VALUES ('commit', ?)", (commit,))
        db.execute("COMMIT")
        db.execute("PRAGMA journal_mode = WAL")
    finally:
        db.close()
    fd = os.open(fresh, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = ["StoreToolError", "check", "export", "import_store", "merge_cursors", "recover", "validate_export"]
