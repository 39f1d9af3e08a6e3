"""pcap capture files, sans-I/O core plus a tiny file writer.

Layer: takes Ethernet frames (14-byte header + GN packet) with their time, gives a classic
libpcap file (LINKTYPE_ETHERNET = DLT_EN10MB, microsecond timestamps, little-endian) that
Wireshark and tshark open directly: Ethernet -> ethertype 0x8947 -> GeoNetworking -> BTP -> ITS.
The reader accepts classic pcap (either byte order, µs or ns timestamps) and pcapng (section,
interface description, enhanced and simple packet blocks), for ``rsu decode``.
"""

from __future__ import annotations

import os
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

LINKTYPE_ETHERNET = 1
SNAPLEN = 65535

_MAGIC_US = 0xA1B2C3D4
_MAGIC_NS = 0xA1B23C4D
_PCAPNG_SHB = 0x0A0D0D0A


class PcapError(ValueError):
    """Not a (complete) pcap/pcapng file."""


def global_header(linktype: int = LINKTYPE_ETHERNET, snaplen: int = SNAPLEN) -> bytes:
    """The 24-byte pcap file header (version 2.4, µs timestamps, little-endian)."""
    return struct.pack("<IHHiIII", _MAGIC_US, 2, 4, 0, 0, snaplen, linktype)


def record(timestamp: float, frame: bytes, snaplen: int = SNAPLEN) -> bytes:
    """One pcap record: 16-byte header (seconds, microseconds, captured, original length) + frame."""
    sec = int(timestamp)
    usec = int(round((timestamp - sec) * 1_000_000))
    if usec >= 1_000_000:
        sec, usec = sec + 1, usec - 1_000_000
    data = frame[:snaplen]
    return struct.pack("<IIII", sec, usec, len(data), len(frame)) + data


class PcapWriter:
    """Appends records to a pcap file; the header is written when the file is new or empty.

    Each record is flushed at once, so the file is readable while the daemon runs and complete
    after a crash. Writes are a few hundred bytes; they are done inline (no thread).
    """

    def __init__(self, path: str | os.PathLike[str], linktype: int = LINKTYPE_ETHERNET) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._file: BinaryIO | None = None
        try:
            f = open(self.path, "ab")  # noqa: SIM115 - kept open for the writer's life, closed by close()
        except OSError as e:
            raise ValueError(f"pcap: cannot open {self.path}: {e.strerror or e}") from None
        if f.tell() == 0:
            f.write(global_header(linktype))
            f.flush()
        else:
            with open(self.path, "rb") as check:
                head = check.read(24)
            if (
                len(head) < 24
                or struct.unpack("<I", head[:4])[0] != _MAGIC_US
                or struct.unpack("<I", head[20:24])[0] != linktype
            ):
                f.close()
                raise ValueError(
                    f"pcap: {self.path} exists and is not a little-endian µs pcap "
                    f"of link type {linktype}; remove it or choose another path"
                )
        self._file = f
        self.records = 0

    def write(self, timestamp: float, frame: bytes) -> None:
        with self._lock:
            if self._file is None:
                return
            self._file.write(record(timestamp, frame))
            self._file.flush()
            self.records += 1

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


@dataclass(frozen=True)
class PcapRecord:
    timestamp: float
    data: bytes
    original_length: int
    linktype: int


@dataclass(frozen=True)
class PcapFile:
    format: str  # "pcap" or "pcapng"
    linktype: int  # of the first interface
    records: list[PcapRecord]


def is_capture(data: bytes) -> bool:
    """Starts like a pcap or pcapng file."""
    if len(data) < 4:
        return False
    magic_le = struct.unpack("<I", data[:4])[0]
    magic_be = struct.unpack(">I", data[:4])[0]
    return magic_le in (_MAGIC_US, _MAGIC_NS) or magic_be in (_MAGIC_US, _MAGIC_NS) or magic_le == _PCAPNG_SHB


def read_capture(data: bytes) -> PcapFile:
    """Parse a pcap or pcapng file held in memory. Raises :class:`PcapError`."""
    if len(data) >= 4 and struct.unpack("<I", data[:4])[0] == _PCAPNG_SHB:
        return _read_pcapng(data)
    return _read_pcap(data)


def _read_pcap(data: bytes) -> PcapFile:
    if len(data) < 24:
        raise PcapError(f"{len(data)} bytes is too short for the 24-byte pcap header")
    for endian in ("<", ">"):
        magic = struct.unpack(endian + "I", data[:4])[0]
        if magic in (_MAGIC_US, _MAGIC_NS):
            break
    else:
        raise PcapError("not a pcap file (bad magic number)")
    scale = 1e-9 if magic == _MAGIC_NS else 1e-6
    _, _, _, _, _, linktype = struct.unpack(endian + "HHiIII", data[4:24])
    linktype &= 0x0FFFFFFF
    records: list[PcapRecord] = []
    p = 24
    while p < len(data):
        if p + 16 > len(data):
            raise PcapError(f"record {len(records)}: truncated record header")
        sec, frac, incl, orig = struct.unpack(endian + "IIII", data[p : p + 16])
        p += 16
        if p + incl > len(data):
            raise PcapError(f"record {len(records)}: {incl} bytes announced, {len(data) - p} left")
        records.append(PcapRecord(sec + frac * scale, bytes(data[p : p + incl]), orig, linktype))
        p += incl
    return PcapFile("pcap", linktype, records)


def _read_pcapng(data: bytes) -> PcapFile:
    records: list[PcapRecord] = []
    interfaces: list[tuple[int, float]] = []  # (linktype, seconds per tick)
    endian = "<"
    p = 0
    while p < len(data):
        if p + 12 > len(data):
            raise PcapError("pcapng: truncated block header")
        btype = struct.unpack(endian + "I", data[p : p + 4])[0]
        if btype == _PCAPNG_SHB:
            bom = data[p + 8 : p + 12]
            endian = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">" if bom == b"\x1a\x2b\x3c\x4d" else ""
            if not endian:
                raise PcapError("pcapng: bad byte-order magic")
            interfaces = []
        blen = struct.unpack(endian + "I", data[p + 4 : p + 8])[0]
        if blen < 12 or blen % 4 or p + blen > len(data):
            raise PcapError(f"pcapng: bad block length {blen} at offset {p}")
        body = data[p + 8 : p + blen - 4]
        if btype == 1:  # interface description
            linktype = struct.unpack(endian + "H", body[0:2])[0]
            interfaces.append((linktype, _if_tsresol(body[8:], endian)))
        elif btype == 6:  # enhanced packet
            if len(body) < 20:
                raise PcapError("pcapng: truncated enhanced packet block")
            iface, hi, lo, cap, orig = struct.unpack(endian + "IIIII", body[:20])
            if iface >= len(interfaces):
                raise PcapError(f"pcapng: packet on undeclared interface {iface}")
            linktype, tick = interfaces[iface]
            if 20 + cap > len(body):
                raise PcapError("pcapng: packet data runs past its block")
            records.append(PcapRecord(((hi << 32) | lo) * tick, bytes(body[20 : 20 + cap]), orig, linktype))
        elif btype == 3:  # simple packet
            if not interfaces:
                raise PcapError("pcapng: simple packet before any interface")
            orig = struct.unpack(endian + "I", body[:4])[0]
            records.append(PcapRecord(0.0, bytes(body[4 : 4 + orig]), orig, interfaces[0][0]))
        p += blen
    linktype = interfaces[0][0] if interfaces else LINKTYPE_ETHERNET
    return PcapFile("pcapng", linktype, records)


def _if_tsresol(options: bytes, endian: str) -> float:
    """if_tsresol option (code 9) of an interface description block; default µs."""
    p = 0
    while p + 4 <= len(options):
        code, length = struct.unpack(endian + "HH", options[p : p + 4])
        if code == 0:
            break
        if code == 9 and length >= 1:
            v = options[p + 4]
            return 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0**-v
        p += 4 + ((length + 3) & ~3)
    return 1e-6
