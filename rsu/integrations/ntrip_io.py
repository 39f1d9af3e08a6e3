"""The asyncio NTRIP client: TCP to the caster, RTCM 3 frames -> GPC (thin; the protocol is sans-I/O).

    client = NtripClient(config, services, clock=clock, drops=metrics)
    await client.start()      # connects, and reconnects with backoff until stop()
    client.status()           # connected, mountpoint, counters, last error
    await client.stop()       # closes the connection and terminates the RTCMEM streams

One connection: send the request (:func:`rsu.integrations.ntrip.build_request`), read the answer
(:class:`ResponseParser`), then feed the stream to the :class:`Rtcm3Framer`; whole frames are
batched (:class:`RtcmBatcher`) and published to the GPC service (:class:`GpcFeed`). GGA sentences
go up every ``gga_interval_s`` when ``gga`` is on. The connection is dropped and re-made (after the
backoff delay) when the caster closes it, refuses the request, or sends nothing for
``read_timeout_s``; a partial frame at a drop is discarded. The backoff resets once a connection has
delivered a valid frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable

from rsu.aio import wait_event
from rsu.clock import Clock, iso_utc
from rsu.integrations.config import ConfigError, NtripConfig
from rsu.integrations.counters import Counters
from rsu.integrations.gpc_feed import GpcFeed
from rsu.integrations.ntrip import Backoff, NtripError, ResponseParser, build_request, gga_sentence
from rsu.integrations.rtcm import Rtcm3Framer, RtcmBatcher
from rsu.transports.base import DropCounter

log = logging.getLogger("rsu.integrations.ntrip")


class NtripClient:
    def __init__(
        self,
        config: NtripConfig,
        services,
        *,
        clock: Clock,
        drops: DropCounter | None = None,
        rng: random.Random | None = None,
        source: str = "ntrip",
        on_publish: Callable[[list[bytes], list[dict]], None] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.counters = Counters(source, drops)
        self.framer = Rtcm3Framer(self.counters)
        self.batcher = RtcmBatcher(config.flush_gap_s, config.max_batch_age_s)
        diss = None
        if config.latitude is not None and config.longitude is not None and config.area_radius_m > 0:
            diss = {
                "destination": {
                    "latitude": config.latitude,
                    "longitude": config.longitude,
                    "shape": "circle",
                    "a": config.area_radius_m,
                }
            }
        self.gpc = GpcFeed(
            services,
            self.counters,
            stream=config.stream,
            max_bytes=config.max_rtcmem_bytes,
            max_correction_age_s=config.max_correction_age_s,
            dissemination=diss,
        )
        self.backoff = Backoff(config.backoff_initial_s, config.backoff_max_s, rng=rng)
        self.on_publish = on_publish
        self.connected = False
        self.last_error: str | None = None
        self.connected_since: float | None = None
        self.last_frame_at: float | None = None
        self._task: asyncio.Task | None = None
        self._stopping = asyncio.Event()
        self.state_changed = asyncio.Event()  # set on every connect/disconnect/publish (tests await it)

    async def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="ntrip-client")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.connected = False
        self.connected_since = None
        self.framer.reset()
        self._flush(self.clock.now())
        self.gpc.stop()

    def status(self) -> dict:
        c = self.config
        return {
            "caster": f"{c.host}:{c.port}",
            "mountpoint": c.mountpoint,
            "version": c.version,
            "connected": self.connected,
            "connected_since": iso_utc(self.connected_since) if self.connected_since else None,
            "last_frame_at": iso_utc(self.last_frame_at) if self.last_frame_at else None,
            "last_error": self.last_error,
            "streams": list(self.gpc.active),
            **self.counters.snapshot(),
        }

    # --- the loop -----------------------------------------------------------------------------------
    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._session()
            except NtripError as e:
                self._failed(e.reason, e.detail)
            except (TimeoutError, OSError, asyncio.IncompleteReadError) as e:
                self._failed("ntrip-connection-failed", f"{type(e).__name__}: {e}")
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a bug: log it, keep reconnecting
                log.exception("NTRIP session failed")
                self._failed("internal-error", str(e))
            self.connected = False
            self.connected_since = None
            self.framer.reset()
            self._flush(self.clock.now())
            self._signal()
            delay = self.backoff.next_delay()
            self.counters.count("reconnects")
            log.info("NTRIP: reconnecting in %.2f s", delay)
            with contextlib.suppress(asyncio.TimeoutError):
                await self._wait(delay)

    async def _wait(self, delay: float) -> None:
        """Sleep ``delay`` seconds, the GPC stale check included; returns early on stop()."""
        loop = asyncio.get_running_loop()
        end = loop.time() + delay
        while not self._stopping.is_set():
            remaining = end - loop.time()
            if remaining <= 0:
                return
            step = remaining
            stale = self.gpc.next_deadline()
            if stale is not None:
                step = min(step, max(0.0, stale - self.clock.now()))
            await wait_event(self._stopping, step)
            self.gpc.tick(self.clock.now())

    def _failed(self, reason: str, detail: str) -> None:
        self.last_error = f"{reason}: {detail}"
        self.counters.drop(reason, detail)
        log.warning("NTRIP %s:%s/%s: %s", self.config.host, self.config.port, self.config.mountpoint, self.last_error)

    async def _session(self) -> None:
        """One connection, until it fails (always raises); the backoff resets if it delivered a frame."""
        c = self.config
        try:
            password = c.read_password()
        except ConfigError as e:
            raise NtripError("ntrip-password-file", str(e)) from None
        reader, writer = await asyncio.wait_for(asyncio.open_connection(c.host, c.port), c.connect_timeout_s)
        delivered = False
        try:
            self.counters.count("connections")
            gga = self._gga() if c.gga else None
            writer.write(
                build_request(
                    host=c.host,
                    port=c.port,
                    mountpoint=c.mountpoint,
                    version=c.version,
                    username=c.username,
                    password=password,
                    gga=gga,
                    user_agent=c.user_agent,
                )
            )
            await writer.drain()
            next_gga = self.clock.now() + c.gga_interval_s if gga else None
            parser = ResponseParser()
            last_byte = self.clock.now()
            while True:
                now = self.clock.now()
                timeout = max(0.0, last_byte + c.read_timeout_s - now)
                gga_due = next_gga if parser.status == "ok" else None
                for t in (self.batcher.next_deadline(), self.gpc.next_deadline(), gga_due):
                    if t is not None:
                        timeout = min(timeout, max(0.0, t - now))
                try:
                    data = await asyncio.wait_for(reader.read(65536), timeout)
                except TimeoutError:
                    data = None
                now = self.clock.now()
                if data == b"":
                    if parser.status is None:
                        raise NtripError("ntrip-closed", "the caster closed the connection before answering")
                    raise NtripError("ntrip-closed", "the caster closed the connection")
                if data:
                    last_byte = now
                    self.counters.count("bytes", len(data))
                    payload = parser.feed(data)
                    if parser.status == "ok" and not self.connected:
                        self.connected = True
                        self.connected_since = now
                        self.last_error = None
                        log.info("NTRIP connected to %s:%s/%s (%s)", c.host, c.port, c.mountpoint, parser.status_line)
                        self._signal()
                    frames = self.framer.feed(payload) if payload else []
                    if frames:
                        delivered = True
                        self.last_frame_at = now
                        self.batcher.add(frames, now)
                    if parser.ended:
                        raise NtripError("ntrip-closed", "the caster ended the stream")
                elif now - last_byte >= c.read_timeout_s:
                    raise NtripError("ntrip-timeout", f"no data for {c.read_timeout_s:g} s")
                batch = self.batcher.due(now)
                if batch:
                    self._publish(batch)
                self.gpc.tick(now)
                if next_gga is not None and now >= next_gga and parser.status == "ok":
                    writer.write(self._gga().encode())
                    await writer.drain()
                    self.counters.count("gga-sent")
                    next_gga = now + c.gga_interval_s
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if delivered:
                self.backoff.reset()

    def _gga(self) -> str:
        c = self.config
        assert c.latitude is not None and c.longitude is not None
        return gga_sentence(c.latitude, c.longitude, c.altitude_m, self.clock.now())

    def _flush(self, now: float) -> None:
        frames = self.batcher.flush()
        if frames:
            self._publish(frames)

    def _publish(self, frames: list[bytes]) -> None:
        answers = self.gpc.publish(frames, self.clock.now())
        if self.on_publish is not None:
            self.on_publish(frames, answers)
        self._signal()

    def _signal(self) -> None:
        self.state_changed.set()
