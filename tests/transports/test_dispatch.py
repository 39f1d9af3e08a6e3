"""Several transports at once: each message goes to the transports its parameters name (or the
defaults), every transport delivers into the one receive callback, unknown names are dropped with
their reason (the daemon's wiring: the send pipeline frames, the transports write)."""

from __future__ import annotations

import asyncio

import pytest

from rsu import catalog
from rsu.clock import ManualClock
from rsu.pipeline.outcomes import Dropped, Sent
from rsu.pipeline.send import GnFramer, SendPipeline
from rsu.services.model import Transmission
from rsu.transports.base import DisseminationParams, ReceivedFrame
from rsu.transports.dispatch import TransportSet
from rsu.transports.drops import DropCounts, DropReason
from rsu.transports.gn_udp import GnUdpTransport

from .conftest import NOW, free_udp_port, random_group
from .test_gn_udp import gn_config


async def test_messages_go_where_their_parameters_say(pdus):
    clock = ManualClock(NOW)
    drops = DropCounts()
    ga, gb = random_group(), random_group()
    pa, pb = free_udp_port(), free_udp_port()
    # the daemon: two GN transports on different groups, only "near" is a default
    near = GnUdpTransport(gn_config(ga, pa, name="near", secured=False), clock=clock, drops=drops)
    far = GnUdpTransport(gn_config(gb, pb, name="far", secured=False, default=False), clock=clock, drops=drops)
    daemon = TransportSet([near, far])
    assert daemon.defaults == ("near",)
    pipeline = SendPipeline([GnFramer(near.core), GnFramer(far.core)], daemon.defaults, None)

    async def send(pdu: bytes, params: DisseminationParams) -> list[str]:
        """As the daemon sends: the pipeline's outcomes, each Sent written by its transport; the names used."""
        tx = Transmission("test", "1", params.kind, pdu, params, True, 0, None, NOW, 0)
        outcomes = pipeline.send(tx, clock.now())
        for o in outcomes:
            if isinstance(o, Sent):
                daemon[o.transport].write(o)
            else:
                drops.drop(o.transport, o.reason)
        assert all(isinstance(o, (Sent, Dropped)) for o in outcomes) and len(outcomes) == len(
            set(params.transports or daemon.defaults)
        )  # one outcome per target
        return [o.transport for o in outcomes if isinstance(o, Sent)]

    # two listening stations, one per group, and one receive callback in the daemon
    listen_a = GnUdpTransport(gn_config(ga, pa, name="listen-a", secured=False), clock=clock, drops=drops)
    listen_b = GnUdpTransport(gn_config(gb, pb, name="listen-b", secured=False), clock=clock, drops=drops)
    heard: asyncio.Queue[ReceivedFrame] = asyncio.Queue()
    inbound: asyncio.Queue[ReceivedFrame] = asyncio.Queue()
    await daemon.start(inbound.put_nowait)
    await listen_a.start(heard.put_nowait)
    await listen_b.start(heard.put_nowait)
    try:
        used = await send(pdus["spatem"], DisseminationParams(catalog.SPATEM))
        assert used == ["near"]
        assert (await asyncio.wait_for(heard.get(), 5)).transport == "listen-a"
        used = await send(pdus["mapem"], DisseminationParams(catalog.MAPEM, transports=("far",)))
        assert used == ["far"]
        frame = await asyncio.wait_for(heard.get(), 5)
        assert frame.transport == "listen-b" and frame.btp_port == 2003
        used = await send(pdus["ivim"], DisseminationParams(catalog.IVIM, transports=("near", "far", "lte")))
        assert used == ["near", "far"] and drops.count(DropReason.UNKNOWN_TRANSPORT, "lte") == 1
        got = {(await asyncio.wait_for(heard.get(), 5)).transport for _ in range(2)}
        assert got == {"listen-a", "listen-b"}
        # both daemon transports deliver into the one callback
        await listen_a.send(pdus["srem"], DisseminationParams(catalog.SREM))
        await listen_b.send(pdus["srem"], DisseminationParams(catalog.SREM))
        assert {(await asyncio.wait_for(inbound.get(), 5)).transport for _ in range(2)} == {"near", "far"}
        assert heard.empty()
    finally:
        await daemon.stop()
        await listen_a.stop()
        await listen_b.stop()
    await near.send(pdus["spatem"], DisseminationParams(catalog.SPATEM))
    assert drops.count(DropReason.NOT_STARTED, "near") == 1  # stopped


def test_transport_names_are_checked():
    clock, drops = ManualClock(NOW), DropCounts()
    a = GnUdpTransport(gn_config("239.1.1.1", 8947, name="x", secured=False), clock=clock, drops=drops)
    b = GnUdpTransport(gn_config("239.1.1.2", 8947, name="x", secured=False), clock=clock, drops=drops)
    with pytest.raises(ValueError, match="two transports are named 'x'"):
        TransportSet([a, b])
    with pytest.raises(ValueError, match="default 'y'"):
        TransportSet([a], defaults=["y"])
