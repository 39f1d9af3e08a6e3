"""The traffic centre's side for the forwarding tests: a real aiohttp webhook server that can be taken
down and brought back on the same port, and a real MQTT subscriber with a persistent session on a
Mosquitto that keeps its sessions across a restart (persistence on, saved at shutdown)."""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path

import aiomqtt
from aiohttp import web
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from rsu.forward.render import ID_HEADER
from tests.transports.conftest import Mosquitto


class Webhook:
    """POSTs are recorded as (id header, JSON body, Authorization header); 204 answers."""

    def __init__(self, port: int, ssl_context: ssl.SSLContext | None = None) -> None:
        self.port = port
        self.ssl_context = ssl_context
        self.received: list[tuple[str, dict, str | None]] = []
        self._runner: web.AppRunner | None = None

    async def _post(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        self.received.append((request.headers[ID_HEADER], body, request.headers.get("Authorization")))
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/centre", self._post)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(
            self._runner, "127.0.0.1", self.port, ssl_context=self.ssl_context, reuse_address=True
        ).start()

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}/centre"


def persistent_broker(binary: str, workdir: Path) -> Mosquitto:
    """A Mosquitto that saves its sessions (and their queued QoS 1 messages) when stopped."""
    store = workdir / "mosquitto-store"
    store.mkdir(exist_ok=True)
    return Mosquitto(binary, workdir, extra=f"persistence true\npersistence_location {store}/\n")


class CentreSubscriber:
    """The centre's MQTT client: a persistent session (clean_start off, 1 h session expiry) on ``topic``."""

    def __init__(self, broker: Mosquitto, topic: str = "rsu/#") -> None:
        self.broker = broker
        self.topic = topic
        self.received: list[tuple[str, str, dict]] = []  # (topic, id user property, JSON body)
        self._task: asyncio.Task | None = None
        self.subscribed = asyncio.Event()

    async def _run(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        async with aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            identifier="centre",
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=props,
        ) as client:
            await client.subscribe(self.topic, qos=1)
            self.subscribed.set()
            async for message in client.messages:
                ident = dict(message.properties.UserProperty).get(ID_HEADER) if message.properties else None
                self.received.append((message.topic.value, ident, json.loads(message.payload)))

    async def start(self) -> None:
        self.subscribed.clear()
        self._task = asyncio.create_task(self._run())
        done, _ = await asyncio.wait(
            [self._task, asyncio.ensure_future(self.subscribed.wait())], return_when=asyncio.FIRST_COMPLETED
        )
        if self._task in done:
            self._task.result()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


async def until(condition, timeout: float = 120.0, what: str = "") -> None:
    """Wait for ``condition()`` (a bound on the wait, not on speed: a broken delivery fails here)."""

    async def poll():
        while not condition():
            await asyncio.sleep(0.02)

    try:
        await asyncio.wait_for(poll(), timeout)
    except TimeoutError:
        raise AssertionError(f"not reached within {timeout} s: {what}") from None


def first_seen_in_order(ids: list[str]) -> list[str]:
    """The ids in order of first arrival (at-least-once: a repeat after an outage is dropped here)."""
    seen: dict[str, None] = {}
    for i in ids:
        seen.setdefault(i, None)
    return list(seen)
