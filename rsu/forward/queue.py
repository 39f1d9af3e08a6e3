"""A disk-backed, bounded, ordered queue of messages for one forwarding sink (SQLite, no asyncio).

Layer: takes message bodies (bytes) and an injected clock; gives them back oldest first with an id
that never goes backwards (SQLite ``AUTOINCREMENT``: even across restarts and after every row was
deleted), so the receiving side can de-duplicate what an at-least-once delivery repeats.

Bounds: ``max_items`` (pushing into a full queue drops the oldest, reason ``queue-full``) and
``max_age_s`` (:meth:`expire` drops what waited longer, reason ``expired``); every drop is returned
to the caller to count. The file is in WAL mode: a committed push or ack survives ``kill -9``
(``synchronous=NORMAL``: a power cut may lose the last transactions, never corrupt the queue).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from rsu.clock import Clock

QUEUE_FULL = "queue-full"
EXPIRED = "expired"


@dataclass(frozen=True)
class Item:
    seq: int  # the de-duplication id: strictly increasing, never reused
    created: float  # clock time it was queued
    body: bytes


class DiskQueue:
    def __init__(self, path: Path | str, clock: Clock, *, max_items: int, max_age_s: float) -> None:
        self.path = Path(path)
        self.clock = clock
        self.max_items = max_items
        self.max_age_s = max_age_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS items (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
            "created REAL NOT NULL, body BLOB NOT NULL)"
        )
        self._count = self._db.execute("SELECT COUNT(*) FROM items").fetchone()[0]

    def __len__(self) -> int:
        return self._count

    def push(self, body: bytes) -> tuple[int, int]:
        """Queue ``body``: (its id, how many of the oldest were dropped to make room)."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            cur = self._db.execute("INSERT INTO items (created, body) VALUES (?, ?)", (self.clock.now(), bytes(body)))
            seq = cur.lastrowid
            assert seq is not None  # set by the INSERT
            self._count += 1
            dropped = self._trim(self.max_items)
        return seq, dropped

    def _trim(self, keep: int) -> int:
        excess = self._count - keep
        if excess <= 0:
            return 0
        self._db.execute("DELETE FROM items WHERE seq IN (SELECT seq FROM items ORDER BY seq LIMIT ?)", (excess,))
        self._count -= excess
        return excess

    def resize(self, max_items: int, max_age_s: float) -> int:
        """New bounds (a reload); how many of the oldest were dropped to fit (reason queue-full)."""
        self.max_items, self.max_age_s = max_items, max_age_s
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            return self._trim(max_items)

    def expire(self) -> int:
        """Drop what waited longer than ``max_age_s``; how many (reason expired)."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            n = self._db.execute("DELETE FROM items WHERE created < ?", (self.clock.now() - self.max_age_s,)).rowcount
            self._count -= n
        return n

    def peek(self, limit: int = 1) -> list[Item]:
        """The oldest ``limit`` items, oldest first (left in the queue until :meth:`ack`)."""
        rows = self._db.execute("SELECT seq, created, body FROM items ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [Item(seq, created, bytes(body)) for seq, created, body in rows]

    def ack(self, seq: int) -> None:
        """``seq`` and everything before it were delivered."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            n = self._db.execute("DELETE FROM items WHERE seq <= ?", (seq,)).rowcount
            self._count -= n

    def remove(self, seq: int) -> None:
        """Remove ``seq`` alone (a record that cannot be sent)."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._count -= self._db.execute("DELETE FROM items WHERE seq = ?", (seq,)).rowcount

    def oldest_age(self) -> float:
        """Seconds the oldest item has waited (0 when empty)."""
        row = self._db.execute("SELECT created FROM items ORDER BY seq LIMIT 1").fetchone()
        return max(0.0, self.clock.now() - row[0]) if row and row[0] is not None else 0.0

    def close(self) -> None:
        self._db.close()
