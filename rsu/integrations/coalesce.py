"""Load shedding for the controller feed: the newest datagram per intersection wins (sans-I/O).

A traffic controller sends the whole state of its intersection ten times a second; a state that
has not been turned into a SPATEM before the next one arrives is worth nothing. When the daemon
falls behind, the feed adapter (:mod:`rsu.integrations.controller_io`) drains its socket into a
:class:`CoalescingQueue` and processes from it: a datagram is replaced by a newer one of the same
intersection *before* it is parsed, validated, encoded or signed, so overload costs a socket read
and a key lookup per superseded datagram, not a SPATEM build.

    queue = CoalescingQueue(json_feed_key, clock=clock, max_items=4096)
    queue.push(data, source)      # "queued", "superseded" (an older one of its key dropped) or "full"
    item = queue.pop()            # FeedItem (key, data, source, received_at) or None

* **Key** (``key_of(data, source)``): which intersection a datagram is about, found cheaply without
  decoding it; ``None`` when it cannot be told (the datagram is kept on its own and reaches the
  feed's parser, which counts why it is bad). :func:`json_feed_key` reads the leading
  ``"intersection"`` member of a JSON feed message (and parses the message only when the member is
  not first); :func:`source_key` keys TSCBM datagrams by the controller's address.
* **Newest wins**: a datagram replaces the queued one of its key (the replaced one is counted
  ``superseded``) and keeps that key's place in line, so the intersection that has waited longest
  is served first and none starves. "Newest" is the order of arrival.
* **Bounded**: at most ``max_items`` datagrams are queued (each key once, plus undecided ones); a
  datagram of a new key beyond that is refused (``full``, counted). Superseding never grows the queue.
* ``received_at`` is the injected clock's time of the push; ``waiting_since`` the time its key took its
  place in line; :meth:`oldest_wait` says how far processing lags behind the socket (the feed's
  watchdog adds it to its timeout: the daemon's own lag is not a lost controller).
"""

from __future__ import annotations

import itertools
import json
import re
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from rsu.clock import Clock
from rsu.integrations.tscbm import BLOCK as TSCBM_BLOCK
from rsu.integrations.tscbm import HEADER as TSCBM_HEADER
from rsu.integrations.tscbm import TRAILER as TSCBM_TRAILER

# the first member of a JSON object, when it is "intersection" with a plain value (number, string, or a flat
# object such as {"region": 7, "id": 1201}): it is the first token, so no string or nesting can fake it
_LEADING_KEY = re.compile(
    rb'\A\s*\{\s*"intersection"\s*:\s*(-?\d+|"[^"\\]*"|\{[^{}"]*(?:"[^"\\]*"[^{}"]*)*\})'
    rb"\s*[,}]"
)


@dataclass(frozen=True)
class FeedItem:
    """One queued datagram: ``data`` as received (or the JSON object :func:`json_feed_key` parsed it into)."""

    key: Hashable | None
    data: Any
    source: Any
    received_at: float  # when this datagram arrived
    waiting_since: float  # when its key took its place in line (the first of the datagrams it superseded)


def json_feed_key(data: Any, source: Any = None) -> tuple[Hashable | None, Any]:
    """(key, data) of a JSON feed datagram: the raw ``intersection`` value when it leads the message (a regular
    expression, no parsing); else the message is parsed once and handed on parsed (the feed takes the object)."""
    if isinstance(data, (bytes, bytearray)):
        m = _LEADING_KEY.match(data)
        if m is not None:
            return b"".join(m.group(1).split()), data
        try:
            obj = json.loads(data)
        except (ValueError, RecursionError):
            return None, data
        if isinstance(obj, dict) and "intersection" in obj:
            try:
                return json.dumps(obj["intersection"], sort_keys=True, separators=(",", ":")).encode(), obj
            except (TypeError, ValueError):
                pass
        return None, obj
    return None, data


def source_key(data: Any, source: Any = None) -> tuple[Hashable | None, Any]:
    """(key, data) of a TSCBM datagram: the controller's host (it tells the intersections apart); None for
    a datagram without the TSCBM header and length (it must not replace a good state: the feed counts it)."""
    if (
        not isinstance(data, (bytes, bytearray))
        or len(data) < 2
        or data[0] != TSCBM_HEADER
        or len(data) != 2 + TSCBM_BLOCK * data[1] + TSCBM_TRAILER
    ):
        return None, data
    host = source[0] if isinstance(source, (tuple, list)) and source else source
    return host, data


class CoalescingQueue:
    """Pending feed datagrams, newest per key, oldest key first (see the module text).

    ``key_of(data, source) -> (key, data)``: the key (None: undecided, queued on its own) and the data to
    queue (the same bytes, or what the key function already parsed). Counters: ``queued``, ``superseded``,
    ``full`` (refused: the queue was at ``max_items``), ``popped``.
    """

    def __init__(
        self, key_of: Callable[[Any, Any], tuple[Hashable | None, Any]], *, clock: Clock, max_items: int = 4096
    ) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self.key_of = key_of
        self.clock = clock
        self.max_items = max_items
        self._items: OrderedDict[Hashable, FeedItem] = OrderedDict()
        self._undecided = itertools.count()
        self.counts = {"queued": 0, "superseded": 0, "full": 0, "popped": 0}

    def push(self, data: Any, source: Any = None) -> str:
        """Queue one datagram: ``"queued"``, ``"superseded"`` (it replaced an older one of its key) or
        ``"full"`` (refused)."""
        key, data = self.key_of(data, source)
        slot: Hashable = ("key", key) if key is not None else ("undecided", next(self._undecided))
        now = self.clock.now()
        old = self._items.get(slot)
        item = FeedItem(key, data, source, now, old.waiting_since if old is not None else now)
        if old is not None:
            self._items[slot] = item  # keeps its place in line
            self.counts["superseded"] += 1
            return "superseded"
        if len(self._items) >= self.max_items:
            self.counts["full"] += 1
            return "full"
        self._items[slot] = item
        self.counts["queued"] += 1
        return "queued"

    def pop(self) -> FeedItem | None:
        """The datagram of the key that has waited longest, or None when nothing is queued."""
        if not self._items:
            return None
        _, item = self._items.popitem(last=False)
        self.counts["popped"] += 1
        return item

    def oldest_wait(self, now: float | None = None) -> float:
        """Seconds the key at the head of the line has waited (since the first datagram it still stands for
        arrived; 0 when empty): how far processing lags behind the socket."""
        if not self._items:
            return 0.0
        now = self.clock.now() if now is None else now
        return max(0.0, now - next(iter(self._items.values())).waiting_since)

    def __len__(self) -> int:
        return len(self._items)
