"""The persisted store-and-repeat table (SQLite in the state directory).

Three tables:

* ``messages``: every active entry (service, id) with its message type, state, UPER payload,
  dissemination parameters (JSON), schedule anchor, identification and entity data (JSON).
* ``counters``: numbers that must never go back after a restart even when no entry holds them:
  the IVI identifier cursor per provider, MAPEM revisions with the content hash they belong to,
  SSEM/SREM sequence numbers, RTCMEM msgCnt; each with ``serial``, how often it changed.
* ``meta``: ``commit``, the serial of the last committed change.

Durability: WAL journal with ``synchronous=FULL``. An entry the API acknowledged must survive
``kill -9`` *and* a power cut (FULL syncs the WAL on every commit; NORMAL could lose the last
commits on power loss, which would bring back an IVI identifier or a MAPEM revision that vehicles
already saw). Writes are rare (operator and application requests, entry expiry; never per
repetition or per SPATEM state). ``durability="process_crash"`` (configured as
``services.store_durability``) is the cheaper choice for a deployment that accepts that risk (say,
a central station on a battery-backed or replicated disk): ``synchronous=NORMAL`` and the cursor
file's change log not ``fdatasync``-ed; every commit is still in the kernel before it is
acknowledged, so ``kill -9`` of rsu loses nothing, but a power cut may lose the last changes.

Identifier cursors are kept twice: before every commit the counters are also written to the
cursor file (:mod:`rsu.services.cursors`: the counters that changed, appended durably to its change
log; the whole file at the first change after a start and when the log is full), and at start the
copy further ahead wins. So a store
that is lost, emptied, put back from an older copy or loses its WAL file never brings an
identifier back; the start-up says so in the log (and in the layer's counts: ``store_lost``,
``store_behind``, ``cursor_file_rebuilt``). A damaged store (``PRAGMA quick_check`` fails, or
SQLite cannot read it) is refused with :class:`StoreDamaged`, whose message names the file and
the command that repairs it (``rsu store recover``).

Every change is one transaction (:meth:`Store.apply`): all of a request or nothing.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rsu import statelock
from rsu.services import cursors as cursorfile
from rsu.services.cursors import Cursor, CursorFileError, CursorState

log = logging.getLogger("rsu.services.store")

SCHEMA_VERSION = 2
DB_NAME = "services.sqlite3"
# what an acknowledged change survives (the configuration's services.store_durability) -> SQLite's synchronous
# setting (see the module docstring)
Durability = Literal["power_cut", "process_crash"]
DURABILITY: dict[Durability, str] = {"power_cut": "FULL", "process_crash": "NORMAL"}


class StoreError(Exception):
    """The store could not be read or written (nothing of the failed transaction was applied)."""


class StoreDamaged(StoreError):
    """SQLite cannot read the store, or its quick_check finds damage: start is refused."""


class StoreBusy(StoreError):
    """Another process holds the store in a way that excludes this one (daemon vs. repair command)."""


def db_path(path: str | Path) -> Path:
    """The store file for a state directory (``services.sqlite3`` in it), or the file itself."""
    p = Path(path)
    return p if p.suffix in (".sqlite3", ".sqlite", ".db") else p / DB_NAME


def repair_hint(p: Path) -> str:
    return f"stop rsu, then run `rsu store recover --state-dir {p.parent}`"


def is_damage(e: sqlite3.Error) -> bool:
    """Whether an SQLite error means a damaged file (not a lock, a permission or a full disk)."""
    text = str(e).lower()
    return type(e) is sqlite3.DatabaseError or "malformed" in text or "not a database" in text


@dataclass
class StoredEntry:
    """One row of ``messages``, as plain data."""

    service: str
    id: str
    kind: str
    state: str
    payload: bytes | None
    dissemination: dict[str, Any]
    anchor: float | None
    identification: dict[str, Any]
    data: dict[str, Any]
    generation: int
    created_at: float
    updated_at: float
    # the entry's Python value as JSON (rsu.services.model.value_to_json), bound to the payload by its
    # digest: written by earlier versions and by `rsu store import`; a restart reads it instead of
    # decoding the payload (the authority). The service layer no longer writes it (a restart decodes
    # the payload with the generated codec in about the time reading the JSON takes; writing the JSON
    # cost more than the rest of a request's store write)
    value_json: str | None = None


SCHEMA = """
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
    value_json     TEXT,
    PRIMARY KEY (service, id)
);
CREATE TABLE IF NOT EXISTS counters (
    name   TEXT PRIMARY KEY,
    value  INTEGER NOT NULL,
    aux    TEXT,
    serial INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS meta (
    name   TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
);
"""

ENTRY_COLUMNS = (
    "service, id, kind, state, payload, dissemination, anchor, identification, data, generation, "
    "created_at, updated_at, value_json"
)


def put_entry(db: sqlite3.Connection, e: StoredEntry) -> None:
    db.execute(
        f"INSERT OR REPLACE INTO messages ({ENTRY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            e.service,
            e.id,
            e.kind,
            e.state,
            e.payload,
            json.dumps(e.dissemination, sort_keys=True),
            e.anchor,
            json.dumps(e.identification, sort_keys=True),
            json.dumps(e.data, sort_keys=True),
            e.generation,
            e.created_at,
            e.updated_at,
            e.value_json,
        ),
    )


def entry_of_row(r: tuple[Any, ...]) -> StoredEntry:
    return StoredEntry(
        r[0],
        r[1],
        r[2],
        r[3],
        r[4],
        json.loads(r[5]),
        r[6],
        json.loads(r[7]),
        json.loads(r[8]),
        r[9],
        r[10],
        r[11],
        r[12],
    )


class Store:
    """The SQLite store. ``path`` is the state directory (the file is ``services.sqlite3`` in it) or a file.

    Opening checks the file (``quick_check``; :class:`StoreDamaged` when damaged), then reconciles
    the identifier cursors with the cursor file (see the module docstring). What it found is in
    ``start_events``: ``(code, message)`` pairs, already logged as warnings.
    ``exclusive``: the repair commands' mode (fails with :class:`StoreBusy` while a daemon has the
    store open; a daemon cannot open it meanwhile). ``durability``: a key of :data:`DURABILITY`.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout_ms: int = 2000,
        exclusive: bool = False,
        durability: Durability = "power_cut",
    ) -> None:
        if durability not in DURABILITY:
            raise StoreError(f"store durability {durability!r}: expected one of {', '.join(DURABILITY)}")
        p = db_path(path)
        self.path = p
        self.durability = durability
        self.cursor_path = cursorfile.cursor_path(p)
        self._cursor_writer = cursorfile.CursorWriter(self.cursor_path, sync=durability == "power_cut")
        self.start_events: list[tuple[str, str]] = []
        self._db: sqlite3.Connection | None = None
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"{p.parent}: cannot create the state directory ({e.strerror or e})") from None
        self._lock_fd: int | None = lock_store(p, exclusive)
        try:
            self._open(busy_timeout_ms)
        except BaseException:
            self.close()
            raise

    def _open(self, busy_timeout_ms: int) -> None:
        p = self.path
        existed = p.exists()
        had_content = existed and p.stat().st_size > 0
        try:
            file_state, file_problem = cursorfile.read(self.cursor_path), None
        except CursorFileError as e:
            file_state, file_problem = None, str(e)
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a transaction is exactly one apply().
            # check_same_thread=False: the daemon may open the store before its event loop thread takes
            # over; the facade is still used by one thread at a time (it is not thread-safe).
            self._db = sqlite3.connect(
                str(p), isolation_level=None, timeout=busy_timeout_ms / 1000, check_same_thread=False
            )
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"{p}: cannot use WAL journal (got {mode})")
            self._db.execute(f"PRAGMA synchronous = {DURABILITY[self.durability]}")
            problem = self.quick_check()
            if problem != "ok":
                raise StoreDamaged(f"{p}: the store is damaged (quick_check: {problem}); {repair_hint(p)}")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"{p}: written by a newer rsu (store schema {version} > {SCHEMA_VERSION})")
            self._db.executescript(SCHEMA)
            # schema 1 -> 2 (idempotent): counter serials (every schema-1 counter had been issued at least
            # once) and the value cache column
            for table, column, decl in (
                ("counters", "serial", "INTEGER NOT NULL DEFAULT 1"),
                ("messages", "value_json", "TEXT"),
            ):
                if column not in {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
            if version != SCHEMA_VERSION:
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self._cursors = {
                r[0]: Cursor(r[1], r[2], r[3])
                for r in self._db.execute("SELECT name, value, aux, serial FROM counters").fetchall()
            }
            row = self._db.execute("SELECT value FROM meta WHERE name = 'commit'").fetchone()
            self._commit = int(row[0]) if row else 0
        except sqlite3.Error as e:
            if is_damage(e):
                raise StoreDamaged(f"{p}: the store is damaged ({e}); {repair_hint(p)}") from None
            raise StoreError(f"{p}: {e}") from e
        self._reconcile(file_state, file_problem, existed, had_content)

    def _reconcile(
        self, file_state: CursorState | None, file_problem: str | None, existed: bool, had_content: bool
    ) -> None:
        """Take the cursors further ahead from the cursor file; report a lost or stale store."""
        p, cp = self.path, self.cursor_path
        taken: dict[str, Cursor] = {}
        commit = self._commit
        if file_state is not None:
            for name, c in file_state.counters.items():
                mine = self._cursors.get(name)
                if c.ahead_of(mine) or (mine is not None and c.serial == mine.serial and c != mine):
                    taken[name] = c
            if file_state.commit > self._commit:
                commit = file_state.commit
                if not had_content:
                    what = "missing" if not existed else "empty (zero length)"
                    self._event(
                        "store_lost",
                        f"{p}: the store was {what}, but {cp} records {file_state.commit} "
                        "committed changes: the active messages it held are gone (trigger them again, or "
                        "`rsu store import` an export); identifiers continue from the cursor file "
                        f"({len(taken)} cursors), none goes back",
                    )
                else:
                    self._event(
                        "store_behind",
                        f"{p}: the store is behind {cp} (last change {self._commit}, "
                        f"the cursor file records {file_state.commit}): "
                        f"{file_state.commit - self._commit} acknowledged change(s) are missing (its WAL "
                        "file was lost, or an older copy was put back); check the active messages; "
                        f"identifiers continue from the cursor file ({len(taken)} cursors taken from it)",
                    )
            elif file_state.pending is not None and file_state.pending > self._commit and not had_content:
                # one change only, acknowledged or not (it was being written when rsu stopped): the store
                # that held it is gone all the same
                what = "missing" if not existed else "empty (zero length)"
                self._event(
                    "store_lost",
                    f"{p}: the store was {what}, but {cp} records a change being written "
                    f"({file_state.pending}): the active messages it held are gone (trigger them again, or "
                    "`rsu store import` an export); identifiers continue from the cursor file "
                    f"({len(taken)} cursors), none goes back",
                )
            elif file_state.pending is not None and file_state.pending > self._commit:
                log.info(
                    "%s: the change being written when rsu stopped (%d) was never acknowledged; its identifiers "
                    "are skipped, none is reused",
                    p,
                    file_state.pending,
                )
            elif taken:
                self._event(
                    "store_behind",
                    f"{p}: {len(taken)} identifier cursor(s) in {cp} are ahead of the store; "
                    "they continue from the cursor file",
                )
        elif file_problem is not None:
            self._event("cursor_file_rebuilt", f"{file_problem}; rebuilt from the store (whose cursors are kept)")
        elif self._commit > 0 or self._cursors:
            self._event("cursor_file_rebuilt", f"{cp}: missing; rebuilt from the store (whose cursors are kept)")
        if taken or commit != self._commit:
            self._write_db({}, taken, commit)
        wanted = CursorState(self._commit, None, dict(self._cursors))
        in_step = (
            file_state is not None
            and file_state.counters == wanted.counters
            and (self._commit in (file_state.commit, file_state.pending))
        )  # as the last apply() left it
        if not in_step and (wanted.counters or wanted.commit or file_state is not None or file_problem is not None):
            try:
                self._cursor_writer.write(wanted)
            except OSError as e:
                raise StoreError(f"{cp}: cannot write the cursor file ({e.strerror or e})") from None

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError(f"{self.path}: the store is closed")
        return self._db

    def _event(self, code: str, message: str) -> None:
        log.warning("%s", message)
        self.start_events.append((code, message))

    # --- reading ------------------------------------------------------------------------------
    def entries(self) -> list[StoredEntry]:
        try:
            rows = self._conn.execute(
                f"SELECT {ENTRY_COLUMNS} FROM messages ORDER BY created_at, service, id"
            ).fetchall()
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: {e}") from e
        return [entry_of_row(r) for r in rows]

    def counters(self) -> dict[str, tuple[int, str | None]]:
        return {k: (c.value, c.aux) for k, c in self._cursors.items()}

    def cursors(self) -> dict[str, Cursor]:
        """Every counter with its serial (as committed)."""
        return dict(self._cursors)

    @property
    def commit_serial(self) -> int:
        return self._commit

    # --- writing ------------------------------------------------------------------------------
    def apply(
        self,
        upserts: Iterable[StoredEntry] = (),
        deletes: Iterable[tuple[str, str]] = (),
        counters: dict[str, tuple[int, str | None]] | None = None,
    ) -> None:
        """Write one change as a single transaction; on any error nothing is written (StoreError).

        The cursor file is written first (with the counters this change advances): an identifier
        is on disk twice before the request that uses it is acknowledged.
        """
        advanced: dict[str, Cursor] = {}
        try:
            for name, (value, aux) in (counters or {}).items():
                mine = self._cursors.get(name)
                if mine is None or (mine.value, mine.aux) != (int(value), aux):
                    advanced[name] = Cursor(int(value), aux, (mine.serial if mine else 0) + 1)
        except (TypeError, ValueError) as e:
            raise StoreError(f"{self.path}: counter: {e}") from None
        self._write_db(advanced, {}, self._commit + 1, upserts=upserts, deletes=deletes)

    def replace_all(self, entries: Iterable[StoredEntry], cursors: dict[str, Cursor], commit: int) -> None:
        """Import / recovery: put ``entries`` (replacing same keys) and ``cursors`` in one transaction."""
        self._write_db({}, cursors, max(commit, self._commit + 1), upserts=entries)

    def _write_db(
        self,
        advanced: dict[str, Cursor],
        taken: dict[str, Cursor],
        commit: int,
        upserts: Iterable[StoredEntry] = (),
        deletes: Iterable[tuple[str, str]] = (),
    ) -> None:
        changed = {**taken, **advanced}
        if changed or commit != self._commit:
            try:
                self._cursor_writer.change(CursorState(self._commit, commit, {**self._cursors, **changed}), changed)
            except OSError as e:
                raise StoreError(
                    f"{self.cursor_path}: cannot write the cursor file ({e.strerror or e}); nothing was changed"
                ) from None
        db = self._conn
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                for entry in upserts:
                    put_entry(db, entry)
                for service, ident in deletes:
                    db.execute("DELETE FROM messages WHERE service = ? AND id = ?", (service, ident))
                for name, c in changed.items():
                    db.execute(
                        "INSERT OR REPLACE INTO counters (name, value, aux, serial) VALUES (?, ?, ?, ?)",
                        (name, c.value, c.aux, c.serial),
                    )
                db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('commit', ?)", (commit,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except (sqlite3.Error, TypeError, ValueError) as e:
            raise StoreError(f"{self.path}: {e}") from e
        self._cursors.update(changed)
        self._commit = commit

    def quick_check(self) -> str:
        """``ok``, or the first problems ``PRAGMA quick_check`` reports (joined)."""
        rows = self._conn.execute("PRAGMA quick_check(5)").fetchall()
        return "; ".join(str(r[0]) for r in rows)

    def integrity_check(self) -> str:
        rows = self._conn.execute("PRAGMA integrity_check(20)").fetchall()
        return "; ".join(str(r[0]) for r in rows)

    def close(self) -> None:
        self._cursor_writer.close()
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def lock_path(p: Path) -> Path:
    return p.with_name(p.stem + ".lock")


def lock_store(p: Path, exclusive: bool) -> int:
    """Shared lock for daemons (several may read one store in tests), exclusive for the repair commands."""
    try:
        return statelock.acquire(
            lock_path(p),
            exclusive,
            held_by_daemon=f"{p}: in use by a running rsu (stop the daemon first: systemctl stop rsu)",
            held_by_command=f"{p}: an `rsu store` repair command is working on the store; start rsu when it is done",
        )
    except statelock.StateBusy as e:
        raise StoreBusy(str(e)) from None
    except OSError as e:
        raise StoreError(f"{lock_path(p)}: {e.strerror or e}") from None
