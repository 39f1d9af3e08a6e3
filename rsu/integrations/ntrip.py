"""NTRIP client protocol (v1 and v2), GGA sentences and reconnect backoff (sans-I/O).

Request (client -> caster)::

    v1: GET /MOUNT HTTP/1.0            v2: GET /MOUNT HTTP/1.1
        User-Agent: NTRIP rsu/1.0          Host: caster:2101
        Authorization: Basic b64(u:p)      Ntrip-Version: Ntrip/2.0
        <blank line>                       User-Agent: NTRIP rsu/1.0
        [$GPGGA,...]  (when GGA is on)     Authorization: Basic b64(u:p)
                                           [Ntrip-GGA: $GPGGA,...]  (when GGA is on)
                                           Connection: close
                                           <blank line>

Further GGA sentences go up the same connection every ``gga_interval_s`` (both versions).

Response (caster -> client), read by :class:`ResponseParser`:

* ``ICY 200 OK`` (v1; also what many casters, RTKLIB's among them, answer to a v2 request): the
  stream follows the status line directly;
* ``HTTP/1.x 200 OK`` + headers: the stream follows the blank line, de-chunked when
  ``Transfer-Encoding: chunked``; ``Content-Type: gnss/sourcetable`` means the mountpoint is unknown;
* ``SOURCETABLE 200 OK`` (v1): the mountpoint is unknown;
* ``HTTP/1.x 401``: bad credentials; ``404``: no such mountpoint; anything else: refused.

Errors are :class:`NtripError` with a stable reason (``ntrip-unauthorized``, ``ntrip-no-mountpoint``,
``ntrip-refused``, ``ntrip-bad-response``, ``ntrip-bad-chunk``).
"""

from __future__ import annotations

import base64
import math
import random
from datetime import UTC, datetime

from rsu.integrations.counters import ReasonError

MAX_HEADER = 16384


class NtripError(ReasonError):
    """A caster answer or stream the client refuses (``reason``: ``ntrip-...``)."""


def build_request(
    *,
    host: str,
    port: int,
    mountpoint: str,
    version: int,
    username: str | None = None,
    password: str | None = None,
    gga: str | None = None,
    user_agent: str = "NTRIP rsu",
) -> bytes:
    """The request bytes (with the first GGA sentence when ``gga`` is given)."""
    lines = []
    if version == 1:
        lines.append(f"GET /{mountpoint} HTTP/1.0")
        lines.append(f"User-Agent: {user_agent}")
    else:
        lines.append(f"GET /{mountpoint} HTTP/1.1")
        host_part = f"[{host}]" if ":" in host else host
        lines.append(f"Host: {host_part}:{port}")
        lines.append("Ntrip-Version: Ntrip/2.0")
        lines.append(f"User-Agent: {user_agent}")
    if username is not None:
        token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
        lines.append(f"Authorization: Basic {token}")
    if version != 1:
        if gga:
            lines.append(f"Ntrip-GGA: {gga.strip()}")
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    if version == 1 and gga:
        head += gga.encode()
    return head


def gga_sentence(latitude: float, longitude: float, altitude_m: float, posix: float) -> str:
    """``$GPGGA`` for a fixed, surveyed position (fix quality 1, 12 satellites, HDOP 1.0), with CR LF."""
    t = datetime.fromtimestamp(posix, tz=UTC)
    hhmmss = f"{t.hour:02d}{t.minute:02d}{t.second:02d}.{t.microsecond // 10000:02d}"

    def dm(value: float, deg_digits: int) -> str:
        a = abs(value)
        deg = int(a)
        minutes = (a - deg) * 60
        if round(minutes, 5) >= 60:  # 59.999999 rounds up to a whole degree
            deg, minutes = deg + 1, 0.0
        return f"{deg:0{deg_digits}d}{minutes:08.5f}"

    body = ",".join(
        [
            "GPGGA",
            hhmmss,
            dm(latitude, 2),
            "N" if latitude >= 0 else "S",
            dm(longitude, 3),
            "E" if longitude >= 0 else "W",
            "1",
            "12",
            "1.0",
            f"{altitude_m:.1f}",
            "M",
            "0.0",
            "M",
            "",
            "",
        ]
    )
    return f"${body}*{nmea_checksum(body):02X}\r\n"


def nmea_checksum(body: str) -> int:
    """XOR of the characters between ``$`` and ``*``."""
    cs = 0
    for ch in body.encode("ascii"):
        cs ^= ch
    return cs


class _Dechunker:
    """HTTP/1.1 chunked transfer decoding of a stream arriving in pieces."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._remaining = 0  # bytes of chunk data still to pass
        self._state = "size"  # size | data | crlf | done
        self.done = False

    def feed(self, data: bytes) -> bytes:
        self._buf += data
        out = bytearray()
        while self._buf and not self.done:
            if self._state == "size":
                i = self._buf.find(b"\r\n")
                if i < 0:
                    if len(self._buf) > 1024:
                        raise NtripError("ntrip-bad-chunk", "chunk size line too long")
                    break
                line = bytes(self._buf[:i]).split(b";", 1)[0].strip()
                del self._buf[: i + 2]
                try:
                    self._remaining = int(line, 16)
                except ValueError:
                    raise NtripError("ntrip-bad-chunk", f"bad chunk size {line[:20]!r}") from None
                if self._remaining == 0:
                    self.done = True
                    break
                self._state = "data"
            elif self._state == "data":
                take = min(self._remaining, len(self._buf))
                out += self._buf[:take]
                del self._buf[:take]
                self._remaining -= take
                if self._remaining == 0:
                    self._state = "crlf"
            else:  # crlf after chunk data
                if len(self._buf) < 2:
                    break
                if self._buf[:2] != b"\r\n":
                    raise NtripError("ntrip-bad-chunk", "chunk data not followed by CR LF")
                del self._buf[:2]
                self._state = "size"
        return bytes(out)


class ResponseParser:
    """Feed it what the caster sends; it returns stream bytes once the response was accepted.

    ``status`` is None until the status line and headers are read, then ``"ok"``; a refusal raises
    :class:`NtripError`. ``ended`` is set when a chunked stream sent its last chunk.
    """

    def __init__(self) -> None:
        self._head = bytearray()
        self.status: str | None = None
        self.status_line = ""
        self.headers: dict[str, str] = {}
        self._dechunk: _Dechunker | None = None

    @property
    def ended(self) -> bool:
        return self._dechunk is not None and self._dechunk.done

    def feed(self, data: bytes) -> bytes:
        if self.status == "ok":
            return self._dechunk.feed(data) if self._dechunk else data
        self._head += data
        eol = self._head.find(b"\r\n")
        if eol < 0:
            probe = bytes(self._head[:12])
            if not any(probe[: len(p)] == p[: len(probe)] for p in (b"ICY ", b"HTTP/", b"SOURCETABLE")):
                raise NtripError("ntrip-bad-response", f"unexpected answer {probe!r}")
            if len(self._head) > MAX_HEADER:
                raise NtripError("ntrip-bad-response", "no end of the status line")
            return b""
        first = bytes(self._head[:eol])
        if first.startswith(b"ICY "):
            self.status_line = first.decode("latin-1")
            if not first.startswith(b"ICY 200"):
                raise NtripError("ntrip-refused", self.status_line)
            self.status = "ok"
            rest = bytes(self._head[eol + 2 :])
            self._head.clear()
            return rest
        if first.startswith(b"SOURCETABLE"):
            raise NtripError("ntrip-no-mountpoint", "the caster sent its source table (unknown mountpoint)")
        if not first.startswith(b"HTTP/"):
            raise NtripError("ntrip-bad-response", f"unexpected answer {first[:40]!r}")
        i = self._head.find(b"\r\n\r\n")
        if i < 0:
            if len(self._head) > MAX_HEADER:
                raise NtripError("ntrip-bad-response", "no end of the response header")
            return b""
        head = self._head[:i].decode("latin-1")
        rest = bytes(self._head[i + 4 :])
        self._head.clear()
        lines = head.split("\r\n")
        self.status_line = lines[0]
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        parts = self.status_line.split()
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise NtripError("ntrip-bad-response", f"bad status line {self.status_line[:60]!r}")
        code = int(parts[1])
        if code == 401:
            raise NtripError("ntrip-unauthorized", self.status_line)
        if code == 404:
            raise NtripError("ntrip-no-mountpoint", self.status_line)
        if code != 200:
            raise NtripError("ntrip-refused", self.status_line)
        if "sourcetable" in self.headers.get("content-type", "").lower():
            raise NtripError("ntrip-no-mountpoint", "the caster sent its source table (unknown mountpoint)")
        self.status = "ok"
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            self._dechunk = _Dechunker()
            return self._dechunk.feed(rest)
        return rest


class Backoff:
    """Exponential reconnect delays: initial, x2 each failure, capped, with +-jitter; reset on success."""

    def __init__(
        self,
        initial: float,
        maximum: float,
        *,
        factor: float = 2.0,
        jitter: float = 0.1,
        rng: random.Random | None = None,
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self.rng = rng or random.Random()
        self.failures = 0

    def next_delay(self) -> float:
        base = min(self.maximum, self.initial * math.pow(self.factor, self.failures))
        self.failures += 1
        spread = base * self.jitter
        return max(0.0, min(self.maximum, base + self.rng.uniform(-spread, spread)))

    def reset(self) -> None:
        self.failures = 0
