"""The cursor file: a second, tiny copy of every identifier cursor, beside the store.

Every number a receiver compares (IVI iviIdentificationNumber cursor per provider, MAPEM
intersection / road segment revisions and msgIssueRevision, SSEM and SREM sequence numbers,
RTCMEM msgCnt) lives in the store's ``counters`` table. If the store is lost (zero-length,
deleted, replaced by an older copy, its WAL file gone), those numbers must still not go back:
a vehicle that cached revision 5 of an intersection would take a new "revision 0" for a repeat
of old content, and an IVI number handed out again would look like an update of an old IVI.
So the store writes this file too, atomically (temp file, fsync, rename, fsync of the
directory), *before* it commits a change; at start the store takes, counter by counter, the
copy that is further ahead.

Wrapping counters: the values on the air are residues (MAPEM revision 0..127, IVI number
1..32767, SSEM sequence number 0..127). "Further ahead" cannot be read from the values alone
(126 -> 127 -> 0), so each counter also carries ``serial``: how many times it has changed since
it was first issued, an unbounded integer. The copy with the larger serial is ahead; on air the
counter always continues from that copy's value by the counter's own rule (+1 modulo its range),
never from a reset. Equal serials with different values cannot happen when both copies come
from one store; if they do (hand-edited files), the cursor file wins, since it is written first.

The file also records ``commit``, the serial of the store's last committed change, and
``pending``, the change being committed when the file was written. A store whose own commit
serial is below ``commit`` has lost acknowledged changes (its WAL file lost, an older copy put
back, or a new empty file): the start-up reports it. A store at ``pending - 1`` only missed a
change that was interrupted before it was acknowledged.

Format (JSON, UTF-8)::

    {"format": "rsu-cursors", "version": 1, "commit": 41, "pending": 42,
     "counters": {"rlt.rev.1201": {"value": 5, "aux": "9f0c...", "serial": 6}, ...}}

The changes since that file was last written are appended to the change log beside it
(``services.cursors.log``), one line per change: the CRC-32 of the record (8 hex digits), a space,
and the record, JSON ``{"commit": 41, "pending": 42, "counters": {...the counters it changed...}}``.
Each line is written with one ``write`` and ``fdatasync``-ed before the store commits (so a change
costs one small durable append, not a new file, a rename and two fsyncs). Reading takes the file,
then every record in order (a counter from a record replaces the file's when its serial is not
behind). The last line may be torn by a crash or a power cut while it was written: that change was
never acknowledged, and the line is ignored; a damaged line before the last makes the whole copy
unusable (:class:`CursorFileError`: rebuilt from the store, as a garbled file). The store rewrites
the whole file (atomically, as above) at its first change after a start and whenever the log has
grown past :data:`LOG_LIMIT` bytes, and then empties the log. Without the file the log is not read.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

FORMAT = "rsu-cursors"
VERSION = 1
LOG_LIMIT = 64 * 1024  # bytes of change log after which the next change rewrites the whole file


class CursorFileError(Exception):
    """The cursor file exists but cannot be used (unreadable, not JSON, wrong shape)."""


@dataclass(frozen=True)
class Cursor:
    value: int
    aux: str | None
    serial: int  # how many times this counter changed since it was first issued (unbounded)

    def ahead_of(self, other: Cursor | None) -> bool:
        """Whether this copy is further along than ``other`` (see the module docstring)."""
        if other is None:
            return True
        return self.serial > other.serial

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "aux": self.aux, "serial": self.serial}


@dataclass
class CursorState:
    commit: int = 0
    pending: int | None = None
    counters: dict[str, Cursor] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "commit": self.commit,
            "pending": self.pending,
            "counters": {k: self.counters[k].to_json() for k in sorted(self.counters)},
        }


def cursor_path(db_path: Path) -> Path:
    """``services.sqlite3`` -> ``services.cursors.json`` in the same directory."""
    return db_path.with_name(db_path.stem + ".cursors.json")


def log_path(path: Path) -> Path:
    """``services.cursors.json`` -> ``services.cursors.log``: the changes since the file was written."""
    return path.with_name(path.name.removesuffix(".json") + ".log")


def parse(obj: object, where: str = "cursor file") -> CursorState:
    """Check and convert the JSON form; every problem is named (CursorFileError)."""
    problems: list[str] = []
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CursorFileError(f"{where}: not an rsu cursor file (format is not {FORMAT!r})")
    if obj.get("version") != VERSION:
        raise CursorFileError(f"{where}: version {obj.get('version')!r} is not {VERSION}")
    commit, pending = obj.get("commit"), obj.get("pending")
    if not _uint(commit):
        problems.append(f"commit: {commit!r} is not an integer >= 0")
    if pending is not None and not _uint(pending):
        problems.append(f"pending: {pending!r} is not an integer >= 0")
    counters = obj.get("counters")
    out: dict[str, Cursor] = {}
    if not isinstance(counters, dict):
        problems.append("counters: not an object")
    else:
        for name, c in counters.items():
            cur, why = cursor_of(c)
            if cur is None:
                problems.append(f"counters.{name}: {why}")
            else:
                out[name] = cur
    # (a commit or pending that is not a count is always among the problems; the test repeats it for the types)
    if problems or not _uint(commit) or not (pending is None or _uint(pending)):
        raise CursorFileError(f"{where}: " + "; ".join(problems))
    return CursorState(commit, pending, out)


def cursor_of(c: object) -> tuple[Cursor | None, str]:
    """One counter's JSON form -> Cursor, or (None, why not)."""
    if not isinstance(c, dict):
        return None, "not an object"
    value, aux, serial = c.get("value"), c.get("aux"), c.get("serial")
    if not _uint(value):
        return None, f"value {value!r} is not an integer >= 0"
    if aux is not None and not isinstance(aux, str):
        return None, f"aux {aux!r} is not a string or null"
    if not _uint(serial) or serial < 1:
        return None, f"serial {serial!r} is not an integer >= 1"
    unknown = set(c) - {"value", "aux", "serial"}
    if unknown:
        return None, f"unknown member(s) {', '.join(sorted(unknown))}"
    return Cursor(value, aux, serial), ""


def read(path: Path) -> CursorState | None:
    """The cursor file's state with its change log replayed; None when there is no file; CursorFileError
    when it cannot be used."""
    data = _contents(path)
    if data is None:
        return None
    if not data:
        raise CursorFileError(f"{path}: empty file")
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CursorFileError(f"{path}: not JSON ({e})") from None
    return replay(parse(obj, str(path)), log_path(path))


def _contents(path: Path) -> bytes | None:
    """The file's bytes; None when there is no file; CursorFileError when it cannot be read."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise CursorFileError(f"{path}: {e.strerror or e}") from None


def replay(state: CursorState, log: Path) -> CursorState:
    """``state`` with the change log's records applied in order (see the module docstring)."""
    data = _contents(log)
    if data is None:
        return state
    lines = data.split(b"\n")  # the last item: b"" after a complete last line, else a torn one (ignored)
    for i, line in enumerate(lines[:-1]):
        record = _record(line)
        if record is None:
            if i == len(lines) - 2 and not lines[-1]:
                break  # the last line, torn while it was written: never acknowledged
            raise CursorFileError(f"{log}: change {i + 1} of {len(lines) - 1} is damaged")
        state = _merged(state, record)
    return state


def _record(line: bytes) -> CursorState | None:
    """One change log line -> its record; None when it is damaged (checksum, JSON or shape)."""
    crc, _, text = line.partition(b" ")
    try:
        if len(crc) != 8 or int(crc, 16) != zlib.crc32(text):
            return None
        obj = json.loads(text.decode("utf-8"))
        return parse({"format": FORMAT, "version": VERSION, **obj}) if isinstance(obj, dict) else None
    except (ValueError, CursorFileError):  # (json.JSONDecodeError and UnicodeDecodeError are ValueErrors)
        return None


def _merged(state: CursorState, record: CursorState) -> CursorState:
    counters = dict(state.counters)
    for name, c in record.counters.items():
        mine = counters.get(name)
        if mine is None or c.serial >= mine.serial:
            counters[name] = c
    commit = max(state.commit, record.commit)
    pending = next((p for p in (record.pending, state.pending) if p is not None and p > commit), None)
    return CursorState(commit, pending, counters)


def write(path: Path, state: CursorState) -> None:
    """Replace the file atomically and durably (temp file, fsync, rename, fsync of the directory), then
    empty its change log."""
    write_atomic(path, (json.dumps(state.to_json(), separators=(",", ":")) + "\n").encode())
    log = log_path(path)
    if log.exists():
        log.unlink()
        fsync_dir(path.parent)


class CursorWriter:
    """Writes one store's cursor file and its change log, serialising only the counters that changed.

    A change is one record appended to the log (:meth:`change`: the counters it advanced); the whole file
    (:meth:`write`: one atomic, durable replacement, as :func:`write`) is written at the first change
    and when the log is full. For the file, each counter's JSON text is kept and reused while the
    counter is the same object. So a store write serialises the counters it advances, not every counter
    the store ever issued (with hundreds of MAPEMs loaded at start that made start-up grow with N^2).
    ``serialised``: how many counters the last write serialised (the tests' measure). The file has the
    same bytes as :func:`write` gives (counters in name order).
    """

    def __init__(self, path: Path, log_limit: int = LOG_LIMIT, *, sync: bool = True) -> None:
        """``sync=False``: changes are appended without ``fdatasync`` (they survive a crash of the process,
        not a power cut: the store's ``process_crash`` durability)."""
        self.path = path
        self.sync = sync
        self.log = log_path(path)
        self.log_limit = log_limit
        self._log_fd: int | None = None  # the change log, open (appending) once the file was written
        self._log_size = 0
        self._text: dict[str, tuple[Cursor, str]] = {}  # name -> (the counter, its JSON member text)
        self._names: list[str] = []  # the cached names, sorted
        self.serialised = 0

    def change(self, state: CursorState, changed: dict[str, Cursor]) -> None:
        """Record a change: ``state`` is the whole new state, ``changed`` its counters that changed. One
        durable append to the change log; the whole file instead at the first change (since this writer
        was made or since a failure) and when the log is full. OSError when that fails."""
        if self._log_fd is None or self._log_size >= self.log_limit:
            self.write(state)
            return
        text = json.dumps(
            {
                "commit": state.commit,
                "pending": state.pending,
                "counters": {n: c.to_json() for n, c in changed.items()},
            },
            separators=(",", ":"),
        ).encode()
        line = b"%08x %s\n" % (zlib.crc32(text), text)
        try:
            _write_all(self._log_fd, line)
            if self.sync:
                os.fdatasync(self._log_fd)
        except OSError:
            self.close()  # the log may end in a part of this line: the next change writes the whole file
            raise
        self._log_size += len(line)
        self.serialised = len(changed)

    def close(self) -> None:
        if self._log_fd is not None:
            os.close(self._log_fd)
            self._log_fd = None

    def write(self, state: CursorState) -> None:
        """Replace the file with ``state`` (atomically and durably; OSError when that fails), then empty
        the change log."""
        self.close()
        fresh: dict[str, tuple[Cursor, str]] = {}
        for name, c in state.counters.items():
            known = self._text.get(name)
            if known is None or known[0] is not c:
                fresh[name] = (c, json.dumps(name) + ":" + json.dumps(c.to_json(), separators=(",", ":")))
        texts = {**self._text, **fresh}
        names = self._names
        if len(texts) != len(state.counters):
            names = sorted(state.counters)  # a counter left the state (import, rebuild): start again
            texts = {n: texts[n] for n in names}
        elif any(n not in self._text for n in fresh):
            names = sorted(texts)
        head = json.dumps(
            {"format": FORMAT, "version": VERSION, "commit": state.commit, "pending": state.pending},
            separators=(",", ":"),
        )
        body = ",".join(texts[n][1] for n in names)
        write_atomic(self.path, (head[:-1] + ',"counters":{' + body + "}}\n").encode())
        self._text, self._names, self.serialised = texts, names, len(fresh)
        # the file holds everything now: empty the log (a crash before this leaves records the file is
        # not behind of: replaying them changes nothing), and keep it open for the next changes
        created = not self.log.exists()
        fd = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.ftruncate(fd, 0)
            os.fsync(fd)
            if created:
                fsync_dir(self.path.parent)
        except OSError:
            os.close(fd)
            raise
        self._log_fd, self._log_size = fd, 0


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _uint(v: object) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0
