"""The sinks' I/O: an MQTT v5 publisher (aiomqtt) and an HTTP(S) webhook client (aiohttp).

Layer: takes a :class:`rsu.forward.render.Delivery` and returns once the centre acknowledged it
(MQTT: PUBACK/PUBCOMP of QoS 1/2; HTTP: a 2xx answer); raises :class:`SinkError` otherwise. The
connection is opened on first use and reopened after a failure; nothing here retries or queues
(:mod:`rsu.forward.runtime` does).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import TYPE_CHECKING

from rsu.forward.config import MqttSink, WebhookSink
from rsu.forward.render import ID_HEADER, Delivery

if TYPE_CHECKING:
    import aiohttp
    import aiomqtt

log = logging.getLogger("rsu.forward")

CONNECT_TIMEOUT_S = 10.0
PUBLISH_TIMEOUT_S = 10.0


class SinkError(Exception):
    """The centre did not acknowledge (unreachable, refused, timed out, answered an error)."""


def _tls_context(cfg) -> ssl.SSLContext | None:
    if cfg.ca_file is None and cfg.cert_file is None and not getattr(cfg, "tls", False):
        return None
    ctx = ssl.create_default_context(cafile=str(cfg.ca_file.expanduser()) if cfg.ca_file else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cfg.cert_file is not None:
        ctx.load_cert_chain(str(cfg.cert_file.expanduser()), str(cfg.key_file.expanduser()))
    return ctx


def _secret(path) -> str | None:
    return path.expanduser().read_text().strip() if path is not None else None


class MqttSinkIO:
    def __init__(self, cfg: MqttSink, client_id: str) -> None:
        self.cfg = cfg
        self.client_id = cfg.client_id or client_id
        self._client: aiomqtt.Client | None = None
        self._lock = asyncio.Lock()
        self.connected = False

    async def deliver(self, d: Delivery) -> None:
        import aiomqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        try:
            async with self._lock:  # one connection, however many publications are in flight
                if self._client is None:
                    cfg = self.cfg
                    client = aiomqtt.Client(
                        cfg.host,
                        cfg.port,
                        identifier=self.client_id,
                        username=cfg.username,
                        password=_secret(cfg.password_file),
                        tls_context=_tls_context(cfg),
                        protocol=aiomqtt.ProtocolVersion.V5,
                        keepalive=cfg.keepalive,
                        clean_start=True,
                        timeout=PUBLISH_TIMEOUT_S,
                        logger=log,
                        max_inflight_messages=cfg.inflight,
                    )
                    await asyncio.wait_for(client.__aenter__(), CONNECT_TIMEOUT_S)
                    self._client = client
                    self.connected = True
                client = self._client
            if d.topic is None:  # render gives an MQTT sink's deliveries a topic
                raise SinkError("a delivery without a topic")
            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = [(ID_HEADER, d.ident)]
            props.ContentType = "application/json"
            await client.publish(d.topic, d.payload, qos=self.cfg.qos, properties=props, timeout=PUBLISH_TIMEOUT_S)
        except asyncio.CancelledError:
            await self.close()
            raise
        except Exception as e:  # aiomqtt.MqttError, OSError, ssl.SSLError, timeouts: all mean "not delivered"
            await self.close()
            raise SinkError(str(e) or type(e).__name__) from None

    async def close(self) -> None:
        client, self._client = self._client, None
        self.connected = False
        if client is not None:
            try:
                await asyncio.wait_for(client.__aexit__(None, None, None), 2.0)
            except BaseException:  # already gone: nothing to close cleanly
                pass


class WebhookSinkIO:
    def __init__(self, cfg: WebhookSink, client_id: str) -> None:
        self.cfg = cfg
        self._session: aiohttp.ClientSession | None = None
        self._token = _secret(cfg.token_file)
        self.connected = False

    async def deliver(self, d: Delivery) -> None:
        import aiohttp

        if self._session is None:
            ctx = _tls_context(self.cfg) if self.cfg.url.startswith("https:") else None
            connector = aiohttp.TCPConnector(ssl=ctx if ctx is not None else True, limit=1)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=self.cfg.timeout_s)
            )
        headers = {"Content-Type": "application/json", ID_HEADER: d.ident}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            async with self._session.post(self.cfg.url, data=d.payload, headers=headers) as resp:
                await resp.read()
                if not 200 <= resp.status < 300:
                    raise SinkError(f"HTTP {resp.status}")
            self.connected = True
        except SinkError:
            self.connected = False
            raise
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            self.connected = False
            raise SinkError(str(e) or type(e).__name__) from None

    async def close(self) -> None:
        session, self._session = self._session, None
        self.connected = False
        if session is not None:
            await session.close()


def sink_io(cfg, client_id: str):
    return (MqttSinkIO if isinstance(cfg, MqttSink) else WebhookSinkIO)(cfg, client_id)
