"""The audit log: one JSON line per state change or security event, on disk before it is acknowledged.

Takes entries (time, client identity, role, client address, action, target, result); gives an
append-only file ``<state_dir>/audit.jsonl`` (``api.audit.file``). Each line is written with one
``write`` on a descriptor opened ``O_APPEND`` and ``fsync``-ed before :meth:`AuditLog.write` returns,
so an answer the client saw has its line on disk even after kill -9. When a line would make the file
larger than ``max_bytes`` the file is rotated (``audit.jsonl`` -> ``.1`` -> ``.2`` ..., ``keep`` kept).

Entries name things, never carry them: no payload, no token, no key, no password. :func:`clean`
keeps only the known fields, as short strings, so a caller cannot put content in by mistake.

Actions: trigger, update, stop, feed (the traffic-controller feed over HTTP), reload, pki, login-failure,
ban, unban, token-add, token-revoke; an operation refused for its role is written with result
``forbidden``. (A request refused by the rate limit is counted in metrics, not written: a flood must
not fill the log.) Results: ``ok``, or the refusal code (``forbidden``, ``validation``, ...).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rsu.clock import Clock, iso_utc

ACTIONS = (
    "trigger",
    "update",
    "stop",
    "feed",
    "forward",
    "forward-stop",
    "reload",
    "pki",
    "login-failure",
    "ban",
    "unban",
    "token-add",
    "token-revoke",
)
FIELDS = ("time", "identity", "role", "address", "action", "target", "result", "detail")
TARGET_FIELDS = ("service", "id", "token", "key", "path")
MAX_TEXT = 200


def _short(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."


def clean(entry: dict) -> dict:
    """Only the known fields, as bounded strings (a target is a mapping of known names)."""
    out: dict[str, Any] = {}
    for name in FIELDS:
        if name == "target":
            target = entry.get("target") or {}
            out["target"] = {k: _short(target[k]) for k in TARGET_FIELDS if target.get(k) is not None}
        elif entry.get(name) is not None:
            out[name] = _short(entry[name])
    return out


class AuditLog:
    def __init__(self, path: Path, clock: Clock, max_bytes: int = 10_000_000, keep: int = 9) -> None:
        self.path = path
        self.clock = clock
        self.max_bytes, self.keep = max_bytes, keep
        self._lock = threading.Lock()
        self._fd: int | None = None
        self.written = 0

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return self._fd

    def write(self, **entry: Any) -> dict:
        """Append one entry (``time`` filled in) and fsync it; the entry as written. Raises OSError when it
        could not be written: the caller refuses to acknowledge."""
        entry.setdefault("time", iso_utc(self.clock.now()))
        line = (json.dumps(clean(entry), separators=(",", ":"), ensure_ascii=False) + "\n").encode()
        with self._lock:
            fd = self._open()
            size = os.fstat(fd).st_size
            if size and size + len(line) > self.max_bytes:
                self._rotate()
                fd = self._open()
            os.write(fd, line)
            os.fsync(fd)
            self.written += 1
        return json.loads(line)

    def _rotate(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        for i in range(self.keep, 0, -1):
            src = self.path if i == 1 else self.path.with_name(f"{self.path.name}.{i - 1}")
            if src.exists():
                os.replace(src, self.path.with_name(f"{self.path.name}.{i}"))
        try:
            dirfd = os.open(self.path.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


# ------------------------------------------------------------------------------------------------ reading


def files(path: Path) -> list[Path]:
    """The log and its rotated files, oldest first."""
    rotated = []
    for p in path.parent.glob(path.name + ".*"):
        suffix = p.name[len(path.name) + 1 :]
        if suffix.isdigit():
            rotated.append((int(suffix), p))
    return [p for _, p in sorted(rotated, reverse=True)] + ([path] if path.exists() else [])


def parse_time(text: str) -> float:
    """An ISO 8601 time (``2026-12-03T10:00:00Z``, a date alone is its midnight UTC) as POSIX seconds."""
    t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.timestamp()


@dataclass(frozen=True)
class Filter:
    since: float | None = None
    until: float | None = None
    identity: str | None = None  # substring
    action: str | None = None
    result: str | None = None

    def match(self, entry: dict) -> bool:
        try:
            t = parse_time(entry.get("time", ""))
        except ValueError:
            return False
        return (
            (self.since is None or t >= self.since)
            and (self.until is None or t < self.until)
            and (self.identity is None or self.identity in (entry.get("identity") or ""))
            and (self.action is None or entry.get("action") == self.action)
            and (self.result is None or entry.get("result") == self.result)
        )


def read(path: Path, where: Filter = Filter()) -> Iterator[dict]:
    """The entries of the log and its rotated files that match, oldest first (a damaged line is skipped)."""
    for p in files(path):
        with p.open("rb") as f:
            for raw in f:
                try:
                    entry = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(entry, dict) and where.match(entry):
                    yield entry
