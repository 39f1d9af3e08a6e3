"""IS_DataProviding distribution: received-message events fanned out to subscribers (sans-I/O).

The facade publishes one event per received message that passed verification and SSP checks
(and per service event such as "an entry ended"). Each subscriber has a bounded queue (oldest
dropped first, counted) and an optional filter by service; a small history lets a reconnecting
subscriber resume after the last event id it saw. A *waker* callback (set by the API's
event-stream handler) is called whenever a subscriber has something new.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any


class RxDrop(str, enum.Enum):
    """Why the services did not deliver a received message that the security layer accepted."""

    NOT_VERIFIED = "not-verified"  # handed over without a positive verification
    DECODE_ERROR = "decode-error"  # the facilities PDU does not decode
    UNPROCESSABLE = "unprocessable"  # the service cannot process it (e.g. an unknown extension alternative)
    IVI_REPEAT = "ivi-repeat"  # an IVI with the same provider, number and timeStamp as one received before
    IVI_OUTDATED = "ivi-outdated"  # an IVI older (timeStamp) than one received before

    def __str__(self) -> str:
        return self.value


class Subscription:
    def __init__(
        self, hub: ReceivedHub, services: frozenset[str] | None, types: frozenset[str] | None, maxlen: int
    ) -> None:
        self._hub = hub
        self.services = services
        self.types = types
        self._queue: deque[dict[str, Any]] = deque()
        self._maxlen = maxlen
        self.dropped = 0
        self._waker: Callable[[], None] | None = None

    def matches(self, event: dict[str, Any]) -> bool:
        return (self.services is None or event.get("service") in self.services) and (
            self.types is None or event.get("type") in self.types
        )

    def push(self, event: dict[str, Any]) -> None:
        while len(self._queue) >= self._maxlen:  # a loop: a reload may have lowered the bound
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(event)
        if self._waker is not None:
            self._waker()

    def drain(self) -> list[dict[str, Any]]:
        out = list(self._queue)
        self._queue.clear()
        return out

    def __len__(self) -> int:
        return len(self._queue)

    def set_waker(self, waker: Callable[[], None] | None) -> None:
        self._waker = waker

    def close(self) -> None:
        self._hub._subs.discard(self)
        self._waker = None


class ReceivedHub:
    def __init__(self, history: int = 1000, queue: int = 1000) -> None:
        self._seq = 0
        self._history: deque[dict[str, Any]] = deque(maxlen=history)
        self._subs: set[Subscription] = set()
        self._queue = queue
        self.published = 0

    def resize(self, history: int, queue: int) -> None:
        """New bounds (a configuration reload): the newest events and the subscribers stay."""
        if history != self._history.maxlen:
            self._history = deque(self._history, maxlen=history)
        self._queue = queue
        for sub in self._subs:
            sub._maxlen = queue

    def publish(self, event: dict[str, Any]) -> dict[str, Any]:
        self._seq += 1
        event = dict(event, id=self._seq)
        self._history.append(event)
        self.published += 1
        for sub in list(self._subs):
            if sub.matches(event):
                sub.push(event)
        return event

    def subscribe(
        self, services: Iterable[str] | None = None, types: Iterable[str] | None = None, last_id: int | None = None
    ) -> Subscription:
        sub = Subscription(
            self, frozenset(services) if services else None, frozenset(types) if types else None, self._queue
        )
        if last_id is not None:
            for event in self._history:
                if event["id"] > last_id and sub.matches(event):
                    sub.push(event)
        self._subs.add(sub)
        return sub

    def stats(self) -> dict[str, int]:
        return {
            "published": self.published,
            "subscribers": len(self._subs),
            "dropped": sum(s.dropped for s in self._subs),
        }
