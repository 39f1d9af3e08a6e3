"""FrameDelivery: the one place every transport hands received frames to the daemon's callback."""

from __future__ import annotations

import asyncio

from rsu.transports.base import ReceivedFrame
from rsu.transports.delivery import FrameDelivery
from rsu.transports.drops import DropReason

FRAME = ReceivedFrame(secured=b"\x03\x81", transport="t", received_at=0.0)


async def test_sync_async_and_failing_callbacks():
    drops: list[tuple[DropReason, str, str | None]] = []
    d = FrameDelivery("t", lambda reason, detail, message: drops.append((reason, detail, message)))
    d.deliver(FRAME)  # no callback yet: nothing happens
    got = []
    d.callback = got.append
    d.deliver(FRAME)
    assert got == [FRAME] and drops == []

    def broken(frame):
        raise RuntimeError("bug in the receive path")

    d.callback = broken
    d.deliver(FRAME)  # must not raise into the transport's I/O loop
    assert drops == [(DropReason.INTERNAL_ERROR, "callback", "unknown")]  # a received frame: counted with its type

    async def broken_later(frame):
        raise RuntimeError("async bug")

    d.callback = broken_later
    d.deliver(FRAME)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert drops[-1] == (DropReason.INTERNAL_ERROR, "callback", "unknown") and len(drops) == 2


async def test_cancel_ends_pending_callbacks():
    d = FrameDelivery("t", lambda *drop: None)
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def slow(frame):
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    d.callback = slow
    d.deliver(FRAME)
    await asyncio.wait_for(started.wait(), 2)
    await d.cancel()
    assert cancelled.is_set()
