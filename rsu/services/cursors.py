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
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

FORMAT = "rsu-cursors"
VERSION = 1


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
    """The cursor file's state; None when there is no file; CursorFileError when it cannot be used."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise CursorFileError(f"{path}: {e.strerror or e}") from None
    if not data:
        raise CursorFileError(f"{path}: empty file")
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CursorFileError(f"{path}: not JSON ({e})") from None
    return parse(obj, str(path))


def write(path: Path, state: CursorState) -> None:
    """Replace the file atomically and durably: temp file, fsync, rename, fsync of the directory."""
    write_atomic(path, (json.dumps(state.to_json(), separators=(",", ":")) + "\n").encode())


class CursorWriter:
    """Writes one store's cursor file, serialising only the counters that changed since its last write.

    The file still holds every counter (one atomic, durable replacement per change, as :func:`write`);
    what is kept is each counter's JSON text, reused while the counter is the same object. So a store
    write serialises the counters it advances, not every counter the store ever issued (with hundreds
    of MAPEMs loaded at start that made start-up grow with N^2). ``serialised``: how many counters the
    last write serialised (the tests' measure). Same bytes as :func:`write` (counters in name order).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._text: dict[str, tuple[Cursor, str]] = {}  # name -> (the counter, its JSON member text)
        self._names: list[str] = []  # the cached names, sorted
        self.serialised = 0

    def write(self, state: CursorState) -> None:
        """Replace the file with ``state`` (atomically and durably; OSError when that fails)."""
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


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _uint(v: object) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0
