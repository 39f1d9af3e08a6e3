"""Replay detection for accepted signed messages (sans-I/O, bounded).

A single-hop broadcast carries no GN sequence number, so an exact copy of a frame that was
accepted once would pass every check again until its generationTime leaves the acceptance
window. The window remembers each accepted message by the hash of its tbsData (payload and
headerInfo: two genuine messages never share it, since generationTime is in microseconds)
until that moment, and reports a second sighting. Re-encoding the signer (digest instead of
certificate) or the signature does not change the key.
"""

from __future__ import annotations

from collections import OrderedDict

from rsu.limits import OnLimit, ignore


class ReplayWindow:
    def __init__(self, max_entries: int, on_limit: OnLimit = ignore) -> None:
        self.max_entries = max(1, max_entries)
        self.on_limit = on_limit
        self._until: OrderedDict[bytes, float] = OrderedDict()

    def seen(self, key: bytes, until: float, now: float) -> bool:
        """True when ``key`` was remembered and is still inside its window; else remember it until ``until``."""
        known = self._until.get(key)
        if known is not None and known >= now:
            return True
        self._until.pop(key, None)
        while self._until and next(iter(self._until.values())) < now:  # insertion order ~ expiry order
            self._until.popitem(last=False)
        self._until[key] = until
        while len(self._until) > self.max_entries:
            self._until.popitem(last=False)
            self.on_limit("replay-window")
        return False

    def __len__(self) -> int:
        return len(self._until)
