"""Escalating bans after failed authentications, and per-identity rate limits (sans-I/O, injected clock).

:class:`Lockout` counts failures per key (``addr:<client address>`` and ``id:<claimed identity>``);
reaching a rung of :data:`LADDER` bans the key: 3 failures -> 30 s, 6 -> 5 min, 9 -> 1 h,
12 -> 24 h, 15 -> until an admin lifts it (``rsu admin unban``). A request whose address or claimed
identity is banned is refused before anything else looks at it. A successful authentication forgets
the identity's count (the owner of the credential came back), not the address's; a count without a
new failure for ``forget_after`` is forgotten unless banned for good. The table is bounded
(``max_entries``): when full, the entry with the oldest failure makes room (counted, ``on_limit``).

:meth:`Lockout.snapshot` / :meth:`Lockout.restore` give and take the JSON the daemon keeps on disk
(:class:`LockoutFile`), so a restart does not reset the counts.

:class:`RateLimiter` is a token bucket per identity for the requests that change state.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from rsu.clock import Clock

# (failures, ban seconds; None: until unbanned)
LADDER: tuple[tuple[int, float | None], ...] = ((3, 30.0), (6, 300.0), (9, 3600.0), (12, 86400.0), (15, None))
FOREVER = float("inf")


@dataclass(frozen=True)
class Ban:
    key: str
    failures: int
    until: float  # POSIX seconds; inf: until unbanned

    @property
    def permanent(self) -> bool:
        return self.until == FOREVER

    def retry_after(self, now: float) -> int | None:
        return None if self.permanent else max(1, int(self.until - now + 0.999))


def ban_seconds(failures: int) -> float | None | bool:
    """The ban that ``failures`` (just reached) starts: seconds, None for permanent, False for none."""
    for n, seconds in LADDER:
        if failures == n:
            return seconds
    return None if failures > LADDER[-1][0] else False


class Lockout:
    def __init__(
        self,
        clock: Clock,
        *,
        max_entries: int = 10_000,
        forget_after: float = 7 * 86400.0,
        on_limit: Callable[[str], None] | None = None,
    ) -> None:
        self.clock = clock
        self.max_entries = max_entries
        self.forget_after = forget_after
        self._on_limit = on_limit or (lambda name: None)
        # key -> [failures, last failure, banned until (0: not banned)]
        self._entries: dict[str, list[float]] = {}
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._entries)

    def banned(self, keys: Iterable[str]) -> Ban | None:
        """The ban in force on any of ``keys`` (the longest), or None."""
        now = self.clock.now()
        found: Ban | None = None
        for key in keys:
            e = self._entries.get(key)
            if e is not None and e[2] > now and (found is None or e[2] > found.until):
                found = Ban(key, int(e[0]), e[2])
        return found

    def failure(self, keys: Iterable[str]) -> list[Ban]:
        """One failed authentication against every key; the bans it starts."""
        now = self.clock.now()
        self.expire()
        started = []
        for key in keys:
            e = self._entries.get(key)
            if e is None:
                self._make_room()
                e = self._entries[key] = [0, now, 0.0]
            e[0] += 1
            e[1] = now
            seconds = ban_seconds(int(e[0]))
            if seconds is not False:
                e[2] = FOREVER if seconds is None else now + seconds
                started.append(Ban(key, int(e[0]), e[2]))
        return started

    def success(self, identity_key: str) -> bool:
        """A good credential for ``identity_key``: its count is forgotten (True if there was one)."""
        e = self._entries.get(identity_key)
        if e is None or e[2] > self.clock.now():
            return False
        del self._entries[identity_key]
        return True

    def unban(self, key: str | None = None) -> list[str]:
        """Lift the ban and forget the count of ``key`` (every banned key when None): the keys lifted."""
        now = self.clock.now()
        keys = [key] if key is not None else [k for k, e in self._entries.items() if e[2] > now]
        return [k for k in keys if self._entries.pop(k, None) is not None]

    def expire(self) -> int:
        """Forget counts older than ``forget_after`` (not banned now); how many."""
        now = self.clock.now()
        old = [k for k, e in self._entries.items() if e[2] <= now and now - e[1] >= self.forget_after]
        for k in old:
            del self._entries[k]
        return len(old)

    def _make_room(self) -> None:
        while len(self._entries) >= self.max_entries:
            now = self.clock.now()
            # not banned first, then oldest failure
            key = min(self._entries, key=lambda k: (self._entries[k][2] > now, self._entries[k][1]))
            del self._entries[key]
            self.evicted += 1
            self._on_limit("api-lockout")

    def entries(self) -> list[dict]:
        """Every key with its count and ban (for ``rsu admin unban --list``)."""
        now = self.clock.now()
        return [
            {
                "key": k,
                "failures": int(e[0]),
                "last_failure": e[1],
                "banned_until": None if e[2] <= now else ("forever" if e[2] == FOREVER else e[2]),
            }
            for k, e in sorted(self._entries.items())
        ]

    # persistence ------------------------------------------------------------------------------------
    def snapshot(self) -> dict:
        return {
            "version": 1,
            "entries": {k: [int(e[0]), e[1], "forever" if e[2] == FOREVER else e[2]] for k, e in self._entries.items()},
        }

    def restore(self, data: dict) -> int:
        """Take a snapshot (entries that do not parse are skipped); how many were taken."""
        entries = data.get("entries") if isinstance(data, dict) else None
        self._entries = {}
        for k, v in entries.items() if isinstance(entries, dict) else ():
            try:
                n, last, until = int(v[0]), float(v[1]), (FOREVER if v[2] == "forever" else float(v[2]))
            except (TypeError, ValueError, IndexError):
                continue
            if isinstance(k, str) and n > 0:
                self._make_room()
                self._entries[k] = [n, last, until]
        return len(self._entries)


class LockoutFile:
    """The lockout table on disk (JSON, written atomically after every change). Another process
    (``rsu admin unban --config``) may change it: :meth:`changed` says so, :meth:`load` takes it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int] | None = None

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_ino

    def changed(self) -> bool:
        return self._stat() != self._seen

    def load(self, lockout: Lockout) -> int:
        self._seen = self._stat()
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            data = {}  # missing or damaged: start empty
        return lockout.restore(data)

    def save(self, lockout: Lockout) -> None:
        from rsu.pki.keystore import atomic_write

        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps(lockout.snapshot(), separators=(",", ":")).encode(), 0o600)
        self._seen = self._stat()


class RateLimiter:
    """A token bucket per identity: ``burst`` requests at once, refilled at ``per_minute``; bounded."""

    def __init__(
        self,
        clock: Clock,
        per_minute: float,
        burst: int,
        max_entries: int = 10_000,
        on_limit: Callable[[str], None] | None = None,
    ) -> None:
        self.clock = clock
        self.per_minute, self.burst, self.max_entries = per_minute, burst, max_entries
        self._on_limit = on_limit or (lambda name: None)
        self._buckets: dict[str, tuple[float, float]] = {}  # identity -> (tokens, when)

    def allow(self, identity: str) -> float | None:
        """None if the request may go on; else seconds until it could."""
        if self.per_minute <= 0:
            return None
        now = self.clock.now()
        rate = self.per_minute / 60.0
        tokens, when = self._buckets.pop(identity, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - when) * rate)
        while len(self._buckets) >= self.max_entries:  # least recently seen first (re-inserted on each use)
            self._buckets.pop(next(iter(self._buckets)))
            self._on_limit("api-rate-limit")
        if tokens >= 1.0:
            self._buckets[identity] = (tokens - 1.0, now)
            return None
        self._buckets[identity] = (tokens, now)
        return (1.0 - tokens) / rate
