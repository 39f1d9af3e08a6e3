"""MQTT v5 transport: the asyncio adapter over aiomqtt (I/O only; decisions are in :mod:`mqtt_core`).

Layer: takes secured data + :class:`DisseminationParams` and gives MQTT v5 publications (topic
with quadkey levels, Message Expiry Interval = the message validity left, retained for MAPEM/IVIM);
subscribes to the configured types (e.g. SREM) and hands each accepted publication up as a
:class:`ReceivedFrame` through the same callback as the GN transport.

Connection handling: one task keeps a session up; on loss it waits a backoff delay (computed by
:class:`~rsu.transports.mqtt_core.Backoff`) and reconnects with a fresh client, subscribing
again. ``send()`` never waits for the network: it queues; a publisher task drains the queue
while connected, and skips (and counts as ``stale``) whatever went stale while disconnected.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import TYPE_CHECKING

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from rsu.clock import Clock
from rsu.transports.base import DisseminationParams, DropCounter, ReceiveCallback
from rsu.transports.config import MqttConfig
from rsu.transports.delivery import FrameDelivery
from rsu.transports.drops import Drop, DropReason
from rsu.transports.mqtt_core import Backoff, MqttCore, Publication

if TYPE_CHECKING:
    from rsu.pipeline.send import Published

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
PUBLISH_TIMEOUT_S = 10.0


class MqttTransport:
    """A :class:`~rsu.transports.base.Transport` publishing to / subscribing at an MQTT v5 broker."""

    def __init__(self, config: MqttConfig, *, clock: Clock, drops: DropCounter) -> None:
        config.validate()
        self.config = config
        self.name = config.name
        self.clock = clock
        self.drops = drops
        self.core = MqttCore(config, clock)
        self.backoff = Backoff(config.backoff_initial, config.backoff_max)
        self._password = config.read_password()
        self._delivery = FrameDelivery(self.name, self._drop)
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self.connected = asyncio.Event()
        self.disconnected = asyncio.Event()  # set whenever no session is up
        self.disconnected.set()
        self.connections = 0  # successful connections so far
        self.published = 0
        self.received = 0
        self.last_error: str | None = None

    # ------------------------------------------------------------------ Transport
    async def start(self, on_receive: ReceiveCallback) -> None:
        if self._task is not None:
            raise RuntimeError(f"{self.name}: already started")
        self._delivery.callback = on_receive
        self._task = asyncio.create_task(self._run(), name=f"mqtt:{self.name}")

    async def send(self, secured: bytes, params: DisseminationParams) -> None:
        """Queue one publication; returns at once. Never raises; failures are counted."""
        if self._task is None:
            self._drop(DropReason.NOT_STARTED, "send before start or after stop")
            return
        try:
            pub = self.core.publication(secured, params)
        except (ValueError, KeyError, TypeError) as e:
            self._drop(DropReason.BAD_PARAMS, str(e))
            return
        self._queue(pub)

    def write(self, sent: Published) -> None:
        """Queue the publication of a send-pipeline outcome (topic, payload, QoS, retain, expiry: made
        by :attr:`core`); the publisher task sends it while connected. Returns at once; never raises,
        failures are counted (``not-started``, ``queue-full``)."""
        self._queue(sent.publication)

    def _queue(self, pub: Publication) -> None:
        if self._task is None:
            self._drop(DropReason.NOT_STARTED, "send before start or after stop")
            return
        for lost in self.core.queue.push(pub):
            self._drop(DropReason.QUEUE_FULL, f"{lost.kind} on {lost.topic}")
        self._wake.set()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._delivery.cancel()
        self.connected.clear()
        self.disconnected.set()

    async def wait_connected(self, timeout: float) -> None:
        await asyncio.wait_for(self.connected.wait(), timeout)

    # ------------------------------------------------------------------ connection loop
    def _client(self) -> aiomqtt.Client:
        cfg = self.config
        tls = None
        if cfg.use_tls:
            tls = aiomqtt.TLSParameters(
                ca_certs=cfg.ca_file, certfile=cfg.cert_file, keyfile=cfg.key_file, cert_reqs=ssl.CERT_REQUIRED
            )
        return aiomqtt.Client(
            cfg.host,
            cfg.port,
            username=cfg.username,
            password=self._password,
            identifier=cfg.client_id or self.core.source,
            protocol=aiomqtt.ProtocolVersion.V5,
            keepalive=cfg.keepalive,
            clean_start=True,
            tls_params=tls,
            timeout=PUBLISH_TIMEOUT_S,
            logger=log,
        )

    async def _run(self) -> None:
        while True:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except (TimeoutError, aiomqtt.MqttError, OSError, ssl.SSLError) as e:
                self.last_error = str(e) or type(e).__name__
                log.warning("%s: broker %s:%d: %s", self.name, self.config.host, self.config.port, self.last_error)
            except Exception as e:  # a bug: log it, keep the transport alive
                self.last_error = repr(e)
                log.exception("%s: MQTT session failed", self.name)
            finally:
                self.connected.clear()
                self.disconnected.set()
            task = asyncio.current_task()
            if task is not None and getattr(task, "cancelling", lambda: 0)():
                # stop() cancelled us while a connect attempt was finishing: asyncio.wait_for can swallow
                # that cancellation (Python 3.11), so honour it here instead of sleeping and reconnecting
                raise asyncio.CancelledError
            delay = self.backoff.next_delay()
            log.info("%s: reconnecting in %.1f s", self.name, delay)
            await asyncio.sleep(delay)

    async def _session(self) -> None:
        client = self._client()
        await asyncio.wait_for(client.__aenter__(), CONNECT_TIMEOUT_S)
        try:
            self.backoff.reset()
            for topic_filter in self.core.subscription_filters():
                await client.subscribe(topic_filter, options=SubscribeOptions(qos=self.config.qos, noLocal=True))
            self.connections += 1
            self.disconnected.clear()
            self.connected.set()
            log.info("%s: connected to %s:%d", self.name, self.config.host, self.config.port)
            tasks = {asyncio.create_task(self._publisher(client)), asyncio.create_task(self._receiver(client))}
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            for t in done:
                exc = t.exception()
                if exc is not None:
                    raise exc
            raise aiomqtt.MqttError("message stream ended")
        finally:
            self.connected.clear()
            self.disconnected.set()
            try:
                await client.__aexit__(None, None, None)
            except (aiomqtt.MqttError, OSError):
                pass

    async def _publisher(self, client: aiomqtt.Client) -> None:
        queue = self.core.queue
        while True:
            pub, stale = queue.pop()
            for old in stale:
                self._drop(DropReason.STALE, f"{old.kind} on {old.topic} went stale before it could be sent")
            if pub is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            props = Properties(PacketTypes.PUBLISH)
            props.MessageExpiryInterval = pub.expiry_interval(self.clock.now())
            try:
                await client.publish(
                    pub.topic, pub.payload, qos=pub.qos, retain=pub.retain, properties=props, timeout=PUBLISH_TIMEOUT_S
                )
            except (aiomqtt.MqttError, asyncio.CancelledError):
                queue.push_front(pub)  # retried after reconnect unless stale by then
                raise
            self.published += 1

    async def _receiver(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            self._handle(message)

    # ------------------------------------------------------------------ receive
    def _handle(self, message: aiomqtt.Message) -> None:
        try:
            payload = message.payload
            if isinstance(payload, str):
                payload = payload.encode()
            elif not isinstance(payload, (bytes, bytearray)):
                payload = b"" if payload is None else str(payload).encode()
            expiry = getattr(message.properties, "MessageExpiryInterval", None) if message.properties else None
            result = self.core.receive(
                message.topic.value,
                bytes(payload),
                retained=bool(message.retain),
                qos=message.qos,
                expiry_interval=expiry,
            )
        except Exception:
            log.exception("%s: receive failed", self.name)
            self._drop(DropReason.INTERNAL_ERROR, "receive", "unknown")
            return
        if isinstance(result, Drop):
            self._drop(result.reason, result.detail, result.message or "unknown")
            return
        self.received += 1
        self._delivery.deliver(result)

    def _drop(self, reason: DropReason, detail: str, message: str | None = None) -> None:
        """Count a drop; ``message`` (the received frame's message type, or "unknown") marks a received one."""
        log.debug("%s: dropped (%s): %s", self.name, reason, detail)
        self.drops.drop(self.name, str(reason), message)
