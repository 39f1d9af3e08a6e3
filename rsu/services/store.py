"""The persisted store-and-repeat table (SQLite in the state directory).

Two tables:

* ``messages``: every active entry (service, id) with its message type, state, UPER payload,
  dissemination parameters (JSON), schedule anchor, identification and entity data (JSON).
* ``counters``: numbers that must never go back after a restart even when no entry holds them:
  the IVI identifier cursor per provider, MAPEM revisions with the content hash they belong to,
  SSEM/SREM sequence numbers, RTCMEM msgCnt.

Durability: WAL journal with ``synchronous=FULL``. An entry the API acknowledged must survive
``kill -9`` *and* a power cut (FULL syncs the WAL on every commit; NORMAL could lose the last
commits on power loss, which would bring back an IVI identifier or a MAPEM revision that vehicles
already saw). Writes are rare (operator and application requests, entry expiry; never per
repetition or per SPATEM state), so the fsync per commit costs nothing that matters.

Every change is one transaction (:meth:`Store.apply`): all of a request or nothing.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

SCHEMA_VERSION = 1
DB_NAME = "services.sqlite3"


class StoreError(Exception):
    """The store could not be read or written (nothing of the failed transaction was applied)."""


@dataclass
class StoredEntry:
    """One row of ``messages``, as plain data."""

    service: str
    id: str
    kind: str
    state: str
    payload: bytes | None
    dissemination: dict
    anchor: float | None
    identification: dict
    data: dict
    generation: int
    created_at: float
    updated_at: float


_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    service        TEXT    NOT NULL,
    id             TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    state          TEXT    NOT NULL,
    payload        BLOB,
    dissemination  TEXT    NOT NULL,
    anchor         REAL,
    identification TEXT    NOT NULL,
    data           TEXT    NOT NULL,
    generation     INTEGER NOT NULL,
    created_at     REAL    NOT NULL,
    updated_at     REAL    NOT NULL,
    PRIMARY KEY (service, id)
);
CREATE TABLE IF NOT EXISTS counters (
    name   TEXT PRIMARY KEY,
    value  INTEGER NOT NULL,
    aux    TEXT
);
"""


class Store:
    """The SQLite store. ``path`` is the state directory (the file is ``services.sqlite3`` in it) or a file."""

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 2000) -> None:
        p = Path(path)
        if p.suffix not in (".sqlite3", ".sqlite", ".db"):
            p = p / DB_NAME
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            self.path = p
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a transaction is exactly one apply().
            # check_same_thread=False: the daemon may open the store before its event loop thread takes
            # over; the facade is still used by one thread at a time (it is not thread-safe).
            self._db = sqlite3.connect(str(p), isolation_level=None, timeout=busy_timeout_ms / 1000,
                                       check_same_thread=False)
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"{p}: cannot use WAL journal (got {mode})")
            self._db.execute("PRAGMA synchronous = FULL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"{p}: written by a newer rsu (store schema {version} > {SCHEMA_VERSION})")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.Error as e:
            raise StoreError(f"{p}: {e}") from e

    # --- reading ------------------------------------------------------------------------------
    def entries(self) -> list[StoredEntry]:
        try:
            rows = self._db.execute(
                "SELECT service, id, kind, state, payload, dissemination, anchor, identification, data, "
                "generation, created_at, updated_at FROM messages ORDER BY created_at, service, id").fetchall()
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: {e}") from e
        return [StoredEntry(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], json.loads(r[7]),
                            json.loads(r[8]), r[9], r[10], r[11]) for r in rows]

    def counters(self) -> dict[str, tuple[int, str | None]]:
        try:
            rows = self._db.execute("SELECT name, value, aux FROM counters").fetchall()
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: {e}") from e
        return {r[0]: (r[1], r[2]) for r in rows}

    # --- writing ------------------------------------------------------------------------------
    def apply(self, upserts: Iterable[StoredEntry] = (), deletes: Iterable[tuple[str, str]] = (),
              counters: dict[str, tuple[int, str | None]] | None = None) -> None:
        """Write one change as a single transaction; on any error nothing is written (StoreError)."""
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                for e in upserts:
                    db.execute(
                        "INSERT OR REPLACE INTO messages (service, id, kind, state, payload, dissemination, anchor, "
                        "identification, data, generation, created_at, updated_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (e.service, e.id, e.kind, e.state, e.payload, json.dumps(e.dissemination, sort_keys=True),
                         e.anchor, json.dumps(e.identification, sort_keys=True), json.dumps(e.data, sort_keys=True),
                         e.generation, e.created_at, e.updated_at))
                for service, ident in deletes:
                    db.execute("DELETE FROM messages WHERE service = ? AND id = ?", (service, ident))
                for name, (value, aux) in (counters or {}).items():
                    db.execute("INSERT OR REPLACE INTO counters (name, value, aux) VALUES (?, ?, ?)",
                               (name, int(value), aux))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except (sqlite3.Error, TypeError, ValueError) as e:
            raise StoreError(f"{self.path}: {e}") from e

    def integrity_check(self) -> str:
        return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        try:
            self._db.close()
        except sqlite3.Error:
            pass
