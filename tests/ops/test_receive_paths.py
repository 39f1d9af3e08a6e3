"""The daemon's receive path, one fate at a time (in-process daemon, real sockets, injected clock): an SHB
replayed within max_age is dropped as a replay, a held frame's life is counted, the kernel's socket drops
become socket-overflow, and an outgoing frame carries at most the per-frame certificate requests."""

from __future__ import annotations

import asyncio
import socket

import tests.security.samples as samples
from rsu import catalog
from rsu.clock import ManualClock
from tests.ops.rxharness import Neighbour, feed_gn, inline_requests, outgoing_gn_frame, random_digest, running_daemon

START = 1_780_000_000.0


def dropped(d, reason: str, message: str = "spatem") -> float:
    return d.metrics.child(d.metrics.rx_dropped, message, "gn", reason)._value.get()


def accepted(d, message: str = "spatem", service: str = "TLM") -> float:
    return d.metrics.child(d.metrics.accepted, service, message, "gn")._value.get()


async def test_shb_replay_within_max_age_is_dropped_as_replay(tmp_path):
    clock = ManualClock(START)
    async with running_daemon(tmp_path / "s", clock) as d:
        nb = Neighbour(d.config.pki_path, clock)
        frame = nb.frame(catalog.SPATEM, nb.pdu(catalog.SPATEM, samples.spatem()))  # SHB: no sequence number
        feed_gn(d, frame)
        for _ in range(3):
            clock.advance(d.config.security.max_age / 4)
            feed_gn(d, frame)  # the same bytes again, still inside the acceptance window
        assert accepted(d) == 1 and dropped(d, "replay") == 3
        clock.advance(d.config.security.max_age)
        feed_gn(d, frame)  # after the window it is simply too old
        assert dropped(d, "security:generation-time-too-old") == 1 and accepted(d) == 1
        fresh = nb.frame(catalog.SPATEM, nb.pdu(catalog.SPATEM, samples.spatem()))
        feed_gn(d, fresh)  # the same content signed again is a new message
        assert accepted(d) == 2


async def test_held_frames_are_counted_until_they_leave(tmp_path):
    clock = ManualClock(START)
    async with running_daemon(tmp_path / "s", clock, limits={"held_frames": 2, "hold_seconds": 1.0}) as d:
        nb = Neighbour(d.config.pki_path, clock)
        pdu = nb.pdu(catalog.SPATEM, samples.spatem())
        m = d.metrics
        late = nb.new_signer(catalog.SPATEM)
        feed_gn(d, nb.frame(catalog.SPATEM, pdu, signer=late, with_certificate=False))
        for _ in range(3):
            clock.advance(0.001)
            feed_gn(d, random_digest(nb.frame(catalog.SPATEM, pdu, with_certificate=False)))
        held = m.child(m.held, "spatem", "gn")._value.get
        assert held() == 2 and dropped(d, "security:hold-queue-full") == 2  # the late signer's frame went first
        clock.advance(0.001)
        late2 = nb.new_signer(catalog.SPATEM)
        feed_gn(d, nb.frame(catalog.SPATEM, pdu, signer=late2, with_certificate=False))  # pushes one more out
        clock.advance(0.001)
        feed_gn(d, nb.frame(catalog.SPATEM, pdu, signer=late2))  # its certificate: the held one is released
        assert accepted(d) == 2 and held() == 1
        clock.advance(1.5)
        d._refresh_gauges()  # housekeeping
        assert held() == 0 and dropped(d, "security:held-expired") == 1
        row = m.receive_accounting()[("spatem", "gn")]
        assert row == {"received": 6, "accepted": 2, "dropped": 4, "held": 0}
        events = {s.labels["event"]: s.value for s in m.hold_events.collect()[0].samples if s.name.endswith("_total")}
        assert events == {"held": 5, "evicted": 3, "released": 1, "expired": 1}
        assert m.child(m.limit_hits, "held-frames")._value.get() == 3


async def test_kernel_socket_drops_are_counted_as_socket_overflow(tmp_path):
    clock = ManualClock(START)
    async with running_daemon(tmp_path / "s", clock) as d:
        gn = d.transports["gn"]
        sock = gn._transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)  # the smallest buffer the kernel allows
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
        try:
            for _ in range(300):  # the loop is not running meanwhile: the buffer fills, the kernel drops
                tx.sendto(bytes(60), (gn.config.group, gn.config.port))
        finally:
            tx.close()
        for _ in range(50):
            await asyncio.sleep(0.01)  # the loop reads what the kernel kept
        d._refresh_gauges()
        m = d.metrics
        overflow = m.child(m.rx_dropped, "unknown", "gn", "socket-overflow")._value.get()
        row = m.receive_accounting()[("unknown", "gn")]
    assert overflow > 0, row
    assert row["received"] == 300 and row["dropped"] == 300, row  # every datagram sent has its fate


async def test_outgoing_frames_carry_at_most_the_request_cap(tmp_path):
    clock = ManualClock(START)
    async with running_daemon(tmp_path / "s", clock, limits={"p2pcd_per_frame": 3, "p2pcd_pending": 5}) as d:
        nb = Neighbour(d.config.pki_path, clock)
        pdu = nb.pdu(catalog.SPATEM, samples.spatem())
        template = nb.frame(catalog.SPATEM, pdu, with_certificate=False)
        for _ in range(20):
            feed_gn(d, random_digest(template))
        assert len(d.security.pending_certificate_requests) == 5
        sent = [inline_requests(outgoing_gn_frame(d, catalog.SPATEM, samples.spatem(), pdu)) for _ in range(3)]
        assert [len(r) for r in sent] == [3, 2, 0]
        m = d.metrics
        assert m.child(m.limit_hits, "p2pcd-pending")._value.get() == 15
        assert m.child(m.limit_hits, "p2pcd-per-frame")._value.get() == 1


async def test_late_and_skipped_scheduled_sends_are_counted_per_service(tmp_path):
    from tests.ops.daemonproc import example

    clock = ManualClock(START)
    async with running_daemon(tmp_path / "s", clock) as d:
        d.layer.trigger(
            "rlt", {"payload": example("mapem-4arm-intersection.json"), "dissemination": {"repetition_interval_s": 1.0}}
        )
        for _ in range(100):  # the fresh MAPEM goes out on time
            if d._sent:
                break
            await asyncio.sleep(0.01)
        clock.advance(5.5)  # the loop "stalls" for 5.5 intervals
        d._wake.set()
        m = d.metrics
        skipped = m.skipped.labels("RLT", "missed-slot")._value.get
        for _ in range(100):
            if skipped():
                break
            await asyncio.sleep(0.01)
        assert skipped() == 4  # slots 1..4 skipped, slot 5 sent (0.5 s late)
        assert m.late.labels("RLT")._value.get() == 1


async def test_unknown_signer_alternative_is_its_own_reason_on_the_wire(tmp_path):
    clock = ManualClock(START)
    async with running_daemon(tmp_path / "s", clock) as d:
        nb = Neighbour(d.config.pki_path, clock)
        frame = nb.frame(catalog.SPATEM, nb.pdu(catalog.SPATEM, samples.spatem()), with_certificate=False)
        i = len(frame) - 66 - 9  # the digest signer (0x80 + HashedId8) before the P-256 signature
        assert frame[i] == 0x80
        feed_gn(d, frame[:i] + bytes([0x83, 0x01, 0x00]) + frame[i + 9 :])  # SignerIdentifier extension 3
        assert dropped(d, "security:unsupported-signer") == 1
        assert dropped(d, "security:malformed") == 0
