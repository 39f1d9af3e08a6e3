"""GeoNetworking + BTP-B over UDP: the asyncio adapter (I/O only; the protocol is in :mod:`gn_core`).

Layer: takes secured data + :class:`DisseminationParams`, sends one UDP datagram per GN packet
whose content is an Ethernet II frame (14-byte header, ethertype 0x8947) followed by the GN packet,
as Vanetza's UDP link layer does; receives the same on the same group and port and hands each
accepted packet up as a :class:`ReceivedFrame`. Optionally writes every sent and received frame
to a pcap file.

Default: multicast group 239.118.122.97, port 8947, interface ``lo`` (nothing leaves the host),
multicast loop on so that other stations on this host hear us; our own frames come back and are
dropped by source MAC (counted as ``own-frame``). Datagrams the kernel drops because the socket's
receive buffer is full (the daemon fell behind) are read from the socket's drop counter
(``SO_MEMINFO``, else ``/proc/net/udp``) and counted as ``socket-overflow``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
from typing import TYPE_CHECKING

from rsu.clock import Clock
from rsu.limits import OnLimit, ignore
from rsu.transports.base import DisseminationParams, DropCounter, ReceiveCallback
from rsu.transports.config import ConfigError, GnUdpConfig
from rsu.transports.delivery import FrameDelivery
from rsu.transports.drops import Drop, DropReason
from rsu.transports.gn_core import GnCore, GnSendError, SignFunction
from rsu.transports.pcap import PcapWriter

if TYPE_CHECKING:
    from rsu.pipeline.outcomes import Sent

log = logging.getLogger(__name__)


def open_socket(config: GnUdpConfig) -> socket.socket:
    """A non-blocking UDP socket bound for ``config`` (multicast group joined on the interface)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        # SO_REUSEADDR lets several stations on one host bind the group; each gets every datagram.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((config.group, config.port))
        ifindex = socket.if_nametoindex(config.interface)
        # struct ip_mreqn (Linux): group, local address (any), interface index
        mreqn = struct.pack("=4s4si", socket.inet_aton(config.group), socket.inet_aton("0.0.0.0"), ifindex)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, config.ttl)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1 if config.multicast_loop else 0)
        sock.setblocking(False)
    except OSError as e:
        sock.close()
        raise ConfigError(
            f"group/port/interface: cannot open {config.group}:{config.port} on {config.interface}: {e.strerror or e}"
        ) from None
    return sock


SO_MEMINFO = getattr(socket, "SO_MEMINFO", 55)  # Linux: struct of u32, SK_MEMINFO_DROPS at index 8
_SK_MEMINFO_DROPS = 8
OVERFLOW_POLL_EVERY = 32  # datagrams between reads of the kernel's drop counter (housekeeping reads it too)


def socket_drops(sock: socket.socket) -> int | None:
    """Datagrams the kernel dropped on ``sock`` since it was opened (receive buffer full), None if unknown."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 4 * (_SK_MEMINFO_DROPS + 1))
        if len(raw) >= 4 * (_SK_MEMINFO_DROPS + 1):
            return struct.unpack_from("=I", raw, 4 * _SK_MEMINFO_DROPS)[0]
    except OSError:
        pass
    try:  # older kernels: the "drops" column of the socket's line in /proc/net/udp
        inode = str(os.fstat(sock.fileno()).st_ino)
        with open("/proc/net/udp") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 12 and fields[9] == inode:
                    return int(fields[-1])
    except (OSError, ValueError):
        pass
    return None


class SocketDrops:
    """The kernel's drop counter of one socket, read as increments: :meth:`poll` returns the datagrams
    dropped since the previous poll (0 where the counter cannot be read)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._last = socket_drops(sock)

    def poll(self) -> int:
        if self._last is None:
            return 0
        now = socket_drops(self.sock)
        if now is None:
            return 0
        lost = (now - self._last) & 0xFFFFFFFF  # the kernel counter is 32 bits
        self._last = now
        return lost


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: GnUdpTransport) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr) -> None:
        self.owner._datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.warning("%s: socket error: %s", self.owner.name, exc)


class GnUdpTransport:
    """A :class:`~rsu.transports.base.Transport` for GN + BTP-B in UDP datagrams.

    Two ways to send: the daemon's send pipeline (rsu.pipeline.send) frames (and signs) with
    :attr:`core` and gives :meth:`write` the Ethernet frame; a standalone station (tests, tools)
    calls :meth:`send`, which frames with ``sign(payload, kind)`` (the GN headers + BTP + PDU;
    required when ``config.secured`` unless ``framed_outside`` says the pipeline signs).
    ``drops`` counts every dropped frame by reason; ``clock`` stamps LPVs, frames and pcap records.
    """

    def __init__(
        self,
        config: GnUdpConfig,
        *,
        clock: Clock,
        drops: DropCounter,
        sign: SignFunction | None = None,
        on_limit: OnLimit = ignore,
        framed_outside: bool = False,
    ) -> None:
        config.validate()
        if config.secured and sign is None and not framed_outside:
            raise ConfigError("secured: a secured GN transport needs the signing function (sign=...)")
        self.config = config
        self.name = config.name
        self.clock = clock
        self.drops = drops
        self.core = GnCore(config, clock, sign=sign, on_limit=on_limit)
        self._transport: asyncio.DatagramTransport | None = None
        self._delivery = FrameDelivery(self.name, self._drop)
        self._pcap: PcapWriter | None = None
        self._destination = (config.group, config.port)
        self.sent = 0
        self.received = 0
        self._kernel_drops: SocketDrops | None = None
        self._since_poll = 0

    @property
    def mac(self) -> bytes:
        return self.core.mac

    async def start(self, on_receive: ReceiveCallback) -> None:
        if self._transport is not None:
            raise RuntimeError(f"{self.name}: already started")
        self._delivery.callback = on_receive
        if self.config.pcap:
            try:
                self._pcap = PcapWriter(self.config.pcap)
            except ValueError as e:
                raise ConfigError(str(e)) from None
        sock = open_socket(self.config)
        self._kernel_drops = SocketDrops(sock)
        loop = asyncio.get_running_loop()
        try:
            self._transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), sock=sock)
        except OSError:
            sock.close()
            raise
        log.info(
            "%s: GN/BTP over UDP %s:%d on %s, MAC %s",
            self.name,
            self.config.group,
            self.config.port,
            self.config.interface,
            self.mac.hex(":"),
        )

    async def send(self, secured: bytes, params: DisseminationParams) -> None:
        """Secured data -> one datagram (Ethernet + GN packet). Never raises; failures are counted."""
        if self._transport is None:
            self._drop(DropReason.NOT_STARTED, "send before start or after stop")
            return
        try:
            frame = self.core.build_frame(secured, params)
        except GnSendError as e:
            self._drop(e.reason, e.detail)
            return
        except Exception:
            log.exception("%s: building a GN packet failed", self.name)
            self._drop(DropReason.INTERNAL_ERROR, "build")
            return
        self._write(frame)

    def write(self, sent: Sent) -> None:
        """Write the Ethernet frame of a send-pipeline outcome (built by :attr:`core`) as one datagram.
        I/O only; never raises, failures are counted (``not-started``, ``send-failed``)."""
        self._write(sent.frame)

    def _write(self, frame: bytes) -> None:
        if self._transport is None:
            self._drop(DropReason.NOT_STARTED, "send before start or after stop")
            return
        self._capture(frame)
        try:
            self._transport.sendto(frame, self._destination)
        except OSError as e:
            self._drop(DropReason.SEND_FAILED, str(e))
            return
        self.sent += 1

    def poll_socket_drops(self) -> int:
        """Count the datagrams the kernel dropped since the last poll as ``socket-overflow``; returns how many."""
        self._since_poll = 0
        if self._kernel_drops is None or self._transport is None:
            return 0
        lost = self._kernel_drops.poll()
        for _ in range(lost):
            self.drops.drop(self.name, str(DropReason.SOCKET_OVERFLOW), "unknown")
        if lost:
            log.warning("%s: the kernel dropped %d datagrams (receive buffer full)", self.name, lost)
        return lost

    async def stop(self) -> None:
        if self._transport is not None:
            self.poll_socket_drops()
        self._kernel_drops = None
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
        await self._delivery.cancel()
        if self._pcap is not None:
            self._pcap.close()
            self._pcap = None

    # ------------------------------------------------------------------ internals
    def _drop(self, reason: DropReason, detail: str, message: str | None = None) -> None:
        """Count a drop; ``message`` (the received frame's message type, or "unknown") marks a received one."""
        log.debug("%s: dropped (%s): %s", self.name, reason, detail)
        self.drops.drop(self.name, str(reason), message)

    def _capture(self, frame: bytes) -> None:
        if self._pcap is not None:
            try:
                self._pcap.write(self.clock.now(), frame)
            except OSError as e:
                log.warning("%s: pcap write failed: %s", self.name, e)

    def _datagram(self, data: bytes, addr) -> None:
        self._since_poll += 1
        if self._since_poll >= OVERFLOW_POLL_EVERY:
            self.poll_socket_drops()
        try:
            result = self.core.receive_frame(data, link_source=f"{addr[0]}:{addr[1]}")
        except Exception:  # a bug, not bad input: keep running
            log.exception("%s: receive failed", self.name)
            self._capture(data)
            self._drop(DropReason.INTERNAL_ERROR, "receive", "unknown")
            return
        if isinstance(result, Drop):
            if result.reason != DropReason.OWN_FRAME:
                self._capture(data)
            self._drop(result.reason, result.detail, result.message or "unknown")
            return
        self._capture(data)
        self.received += 1
        self._delivery.deliver(result)
