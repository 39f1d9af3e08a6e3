"""Bounds on the API's TCP connections: a connection cap, a header-read timeout and an idle timeout.

aiohttp's server has no connection cap, and a connection that never sends a complete request holds a
file descriptor until the keep-alive timeout. 1,100 such connections exhausted ``nofile`` (1024) and
made ``/v1/health`` unreachable. Here:

* :class:`ConnectionTable` is the sans-I/O core: it knows each connection's state (waiting for a
  request's headers, or busy with a request, an event stream included) and since when, and decides
  which to close. When a new connection would exceed ``max_connections``, the connection that has
  waited longest for a request is closed to make room (``evicted``): a flood of idle connections
  cannot lock out a health check or an operator. Only when every connection is busy is the new one
  refused (``refused``). A connection that has not completed a request's headers within
  ``header_timeout_s`` of opening (``header_timeout``), or that stays without a request for
  ``idle_timeout_s`` after an answer (``idle_timeout``), is closed.
* :class:`GuardedSite` is the asyncio adapter: an aiohttp site whose protocol factory wraps each
  connection, a middleware that marks requests as busy, and a sweep that closes what expired.

Every close is counted by reason (the daemon exports ``rsu_api_connections_closed_total``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

log = logging.getLogger("rsu.api")

CLOSE_REASONS = ("evicted", "refused", "header_timeout", "idle_timeout")
# listen backlog; asyncio accepts up to this many connections in one go before their protocols run,
# so the API holds at most max_connections + BACKLOG sockets for a moment
BACKLOG = 128
FD_RESERVE = 256  # descriptors for everything else: transports, store, PKI files, integrations


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int = 256  # open API connections at most (event streams included)
    header_timeout_s: float = 10.0  # a new connection must complete a request's headers within this
    idle_timeout_s: float = 60.0  # a keep-alive connection without a request for this long is closed


class ConnectionTable:
    """Open connections and their states; every method takes the time, nothing here does I/O."""

    def __init__(self, limits: ConnectionLimits, on_close: Callable[[str], None] | None = None) -> None:
        self.limits = limits
        self._on_close = on_close
        # key -> [busy requests, since (open or end of the last request), has served a request]
        self._conns: dict[Hashable, list] = {}
        self.closed: dict[str, int] = dict.fromkeys(CLOSE_REASONS, 0)

    def __len__(self) -> int:
        return len(self._conns)

    def _count(self, reason: str, n: int = 1) -> None:
        if n:
            self.closed[reason] += n
            if self._on_close is not None:
                for _ in range(n):
                    self._on_close(reason)

    def open(self, key: Hashable, now: float) -> tuple[bool, list[Hashable]]:
        """A new connection: (accepted, connections to close first to make room)."""
        evict: list[Hashable] = []
        if len(self._conns) >= self.limits.max_connections:
            waiting = sorted((c[1], k) for k, c in self._conns.items() if c[0] == 0)
            need = len(self._conns) - self.limits.max_connections + 1
            if len(waiting) < need:
                self._count("refused")
                return False, []
            evict = [k for _, k in waiting[:need]]
            for k in evict:
                del self._conns[k]
            self._count("evicted", len(evict))
        self._conns[key] = [0, now, False]
        return True, evict

    def request_started(self, key: Hashable) -> None:
        c = self._conns.get(key)
        if c is not None:
            c[0] += 1

    def request_ended(self, key: Hashable, now: float) -> None:
        c = self._conns.get(key)
        if c is not None:
            c[0] = max(0, c[0] - 1)
            c[1] = now
            c[2] = True

    def lost(self, key: Hashable) -> None:
        """The connection closed (either side); forgetting an unknown key is fine."""
        self._conns.pop(key, None)

    def expired(self, now: float) -> list[Hashable]:
        """Connections to close now (header or idle timeout); they are forgotten and counted."""
        out = []
        for key, (busy, since, served) in list(self._conns.items()):
            if busy:
                continue
            limit, reason = (
                (self.limits.idle_timeout_s, "idle_timeout")
                if served
                else (self.limits.header_timeout_s, "header_timeout")
            )
            if now - since >= limit:
                out.append(key)
                del self._conns[key]
                self._count(reason)
        return out

    def next_check(self) -> float:
        """How often to call :meth:`expired` (a fraction of the shortest timeout)."""
        return max(0.05, min(self.limits.header_timeout_s, self.limits.idle_timeout_s) / 4)


# ---------------------------------------------------------------------------------------------- asyncio


def ensure_nofile(limits: ConnectionLimits) -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE (up to the hard limit) so the cap, the backlog and the daemon's other
    descriptors fit; returns (soft limit now, descriptors needed)."""
    import resource

    need = limits.max_connections + BACKLOG + FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        if target > soft:
            try:  # refused under the unit's SystemCallFilter=~@resources (EPERM): LimitNOFILE= sets it there
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
            except (OSError, ValueError):
                pass
    return soft, need


class _Guarded(asyncio.Protocol):
    """One accepted connection: asks the table, then hands everything to aiohttp's own protocol."""

    def __init__(self, site: GuardedSite) -> None:
        self._site = site
        self._inner: Any = None
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        site = self._site
        self._transport = transport  # type: ignore[assignment]
        accepted, evict = site.table.open(transport, site.loop.time())
        for old in evict:
            old.abort()  # type: ignore[attr-defined]
        if not accepted:
            transport.abort()  # type: ignore[attr-defined]
            return
        server = site.runner.server
        if server is None:  # never: a site starts after its runner's setup()
            raise RuntimeError("the API runner is not set up")
        self._inner = server()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._site.table.lost(self._transport)
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


class GuardedSite(web.BaseSite):
    """A TCP site of ``runner`` whose connections are bounded by ``table`` (see the module text)."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        table: ConnectionTable,
        *,
        backlog: int = BACKLOG,
        ssl_context=None,
    ) -> None:
        super().__init__(runner, backlog=backlog, ssl_context=ssl_context)
        self.host, self.requested_port = host, port
        self.table = table
        self.runner = runner
        self.loop = asyncio.get_running_loop()
        self._sweeper: asyncio.Task | None = None

    @property
    def name(self) -> str:
        return f"{'https' if self._ssl_context else 'http'}://{self.host}:{self.requested_port}"

    async def start(self) -> None:
        await super().start()
        # a TLS handshake must end within the header timeout (the table sees the connection only after it)
        handshake_s = self.table.limits.header_timeout_s if self._ssl_context else None
        self._server = await self.loop.create_server(
            lambda: _Guarded(self),
            self.host,
            self.requested_port,
            backlog=self._backlog,
            reuse_address=True,
            ssl=self._ssl_context or None,
            ssl_handshake_timeout=handshake_s,
        )
        self._sweeper = asyncio.create_task(self._sweep(), name="rsu-api-connections")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        await super().stop()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.table.next_check())
            for transport in self.table.expired(self.loop.time()):
                transport.abort()  # type: ignore[attr-defined]


def busy_middleware(table_of: Callable[[], ConnectionTable | None]):
    """Marks a connection busy while one of its requests is handled (an event stream: all its life)."""

    @web.middleware
    async def middleware(request: web.Request, handler):
        table = table_of()
        transport = request.transport
        if table is None or transport is None:
            return await handler(request)
        table.request_started(transport)
        try:
            return await handler(request)
        finally:
            table.request_ended(transport, asyncio.get_running_loop().time())

    return middleware
