"""The asyncio side of the controller feed: a UDP listener and the watchdog timer (thin; no protocol here).

    runner = ControllerRunner(feed)          # feed: rsu.integrations.controller.ControllerFeed
    await runner.start()                     # binds config.host:config.port (UDP) unless port is null
    ...
    await runner.stop()

Load shedding: whenever the socket is readable it is drained (up to :data:`DRAIN_MAX` datagrams)
into a :class:`rsu.integrations.coalesce.CoalescingQueue`, which keeps only the newest datagram per
intersection; a processing task hands the queued ones to :meth:`ControllerFeed.on_datagram`, yielding
to the event loop every :data:`PROCESS_BATCH` (so that the scheduler sends what was just built and
the socket is drained again). Under overload a superseded state therefore costs a socket read and
a key lookup, never a parse, an encode or a signature; each is counted (``superseded`` in the feed's
counters and ``on_superseded(n)``, which the daemon turns into
``rsu_scheduled_sends_skipped_total{service="TLM",reason="superseded"}``).

The socket asks for a :data:`RECEIVE_BUFFER` byte receive buffer (the kernel caps it at
``net.core.rmem_max``); datagrams the kernel still drops because it was full are read from the
socket's drop counter and counted as the feed drop ``socket-overflow``, like the GN socket's.

The watchdog task sleeps until the feed's next deadline (or ``age_report_interval_s``, so feed ages
keep being reported) and calls :meth:`ControllerFeed.tick` with the queue's backlog (how long the
datagram first in line has waited), so that the daemon's own lag under overload is not taken for a
lost controller. ``on_result`` (optional) sees every
:class:`FeedResult`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable

from rsu.aio import wait_event
from rsu.integrations.coalesce import CoalescingQueue, json_feed_key, source_key
from rsu.integrations.controller import ControllerFeed, FeedResult
from rsu.transports.gn_udp import SocketDrops

log = logging.getLogger("rsu.integrations.controller")

RECEIVE_BUFFER = 4 * 1024 * 1024  # bytes asked for the feed socket (about 2,000 JSON updates of 12 groups)
DRAIN_MAX = 4096  # datagrams read per readiness event before other tasks run
PROCESS_BATCH = 8  # feed updates processed before yielding to the scheduler and the socket
QUEUE_MAX = 4096  # queued datagrams (one per intersection, plus undecided ones)
MAX_DATAGRAM = 65535


def open_feed_socket(host: str, port: int, receive_buffer: int = RECEIVE_BUFFER) -> socket.socket:
    """A non-blocking UDP socket bound to (host, port) with a large receive buffer."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.bind(address)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class ControllerRunner:
    def __init__(
        self,
        feed: ControllerFeed,
        *,
        on_result: Callable[[FeedResult], None] | None = None,
        on_superseded: Callable[[int], None] | None = None,
        queue_max: int = QUEUE_MAX,
    ) -> None:
        self.feed = feed
        self.on_result = on_result
        self.on_superseded = on_superseded
        key_of = source_key if feed.config.format == "tscbm" else json_feed_key
        self.queue = CoalescingQueue(key_of, clock=feed.clock, max_items=queue_max)
        self._sock: socket.socket | None = None
        self._kernel_drops: SocketDrops | None = None
        self._task: asyncio.Task | None = None
        self._processor: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._queued = asyncio.Event()

    @property
    def address(self) -> tuple[str, int] | None:
        """The bound UDP address (host, port), or None without a listener."""
        if self._sock is None:
            return None
        return self._sock.getsockname()[:2]

    @property
    def receive_buffer(self) -> int | None:
        """The receive buffer the kernel granted the feed socket (bytes), None without a listener."""
        return None if self._sock is None else self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)

    async def start(self) -> None:
        cfg = self.feed.config
        loop = asyncio.get_running_loop()
        if cfg.port is not None:
            self._sock = open_feed_socket(cfg.host, cfg.port)
            self._kernel_drops = SocketDrops(self._sock)
            loop.add_reader(self._sock.fileno(), self._readable)
            self._processor = asyncio.create_task(self._process(), name="controller-feed")
            host, port = self._sock.getsockname()[:2]
            log.info(
                "controller feed (%s) listening on udp %s:%s (receive buffer %d bytes)",
                cfg.format,
                host,
                port,
                self.receive_buffer,
            )
        self.feed.set_wakeup(self._wake.set)
        self._task = asyncio.create_task(self._watchdog(), name="controller-watchdog")

    async def stop(self) -> None:
        self.feed.set_wakeup(None)
        for task in (self._task, self._processor):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._processor = None
        if self._sock is not None:
            self.poll_socket_drops()
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = self._kernel_drops = None

    def handle(self, data, addr) -> None:
        """One datagram (or the JSON object the key function parsed it into) through the feed."""
        try:
            result = self.feed.on_datagram(data, addr)
        except Exception:  # a bug must not stop the listener: count it, keep serving
            log.exception("controller datagram from %s could not be processed", addr)
            self.feed.counters.drop("internal-error")
            return
        if self.on_result is not None:
            self.on_result(result)

    def poll_socket_drops(self) -> int:
        """Count the datagrams the kernel dropped since the last poll as ``socket-overflow``; returns how many."""
        if self._kernel_drops is None:
            return 0
        lost = self._kernel_drops.poll()
        for _ in range(lost):
            self.feed.counters.drop("socket-overflow")
        if lost:
            log.warning("controller feed: the kernel dropped %d datagrams (receive buffer full)", lost)
        return lost

    # --- internals -------------------------------------------------------------------------------
    def _readable(self) -> None:
        sock, queue = self._sock, self.queue
        if sock is None:
            return
        superseded = 0
        for _ in range(DRAIN_MAX):
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                log.warning("controller feed socket error: %s", e)
                break
            outcome = queue.push(data, addr)
            if outcome == "superseded":
                superseded += 1
            elif outcome == "full":
                self.feed.counters.drop("feed-queue-full")
        self.poll_socket_drops()
        if superseded:
            self.feed.counters.count("superseded", superseded)
            if self.on_superseded is not None:
                self.on_superseded(superseded)
        if len(queue):
            self._queued.set()

    async def _process(self) -> None:
        queue = self.queue
        while True:
            await self._queued.wait()
            self._queued.clear()
            done = 0
            while (item := queue.pop()) is not None:
                self.handle(item.data, item.source)
                done += 1
                if done % PROCESS_BATCH == 0:
                    await asyncio.sleep(0)  # the scheduler sends what was built, the socket is drained

    async def _watchdog(self) -> None:
        feed = self.feed
        while True:
            now = feed.clock.now()
            timeout = feed.config.age_report_interval_s
            deadline = feed.next_deadline(self.queue.oldest_wait(now))
            if deadline is not None:
                timeout = min(timeout, max(0.0, deadline - now))
            await wait_event(self._wake, timeout)
            self._wake.clear()
            try:
                feed.tick(backlog_s=self.queue.oldest_wait())  # our own lag is not a lost controller
            except Exception:
                log.exception("controller watchdog failed")
