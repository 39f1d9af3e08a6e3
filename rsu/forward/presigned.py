"""Pre-signed messages from the centre, sans-I/O: the checks, and the repetition schedule on disk.

Layer: takes EtsiTs103097Data-Signed (COER) that the centre signed with its own authorization
ticket, around a facilities PDU (UPER) as ``unsecuredData``; gives the same bytes, unchanged, to the
indirect (MQTT) transports, once or on a repetition schedule. Nothing is re-signed.

Checks, in order, each refusing with a named reason (:class:`Refused`):

* ``malformed`` / ``not-signed-data``: not a signed Ieee1609Dot2Data carrying the PDU itself;
* ``signer-certificate-unknown``: signed with a digest of a certificate we do not hold (the centre
  must sign with its full certificate: a pre-signed message is never held waiting for one);
* every reason of the verifier (:class:`rsu.security.verify.Reason`): signature, generation time,
  chain to a trusted root, ITS-AID permitted, and the SSP against the decoded content
  (``ssp-violation``, ``psid-not-permitted``, ``invalid-signature``, ``untrusted-root``, ...);
* ``gn-needs-rsu-signature``: a GeoNetworking transport was named. A secured GN packet signs the
  GN common and extended headers and BTP together with the PDU (EN 302 636-4-1): headers the RSU
  makes per packet (sequence number, position vector, time). A centre cannot sign them, and a GN
  packet that carried the centre's data as its secured part would fail every receiver's parse and
  check; so pre-signed messages travel on MQTT transports only (see docs/operations.md);
* ``unknown-transport`` / ``no-transport``.

The repetition schedule (:class:`Schedule`) is a SQLite table in the state directory: an accepted
repeating message survives ``kill -9`` and resumes with the repetitions it had left.
"""

from __future__ import annotations

import base64
import binascii
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsu.clock import Clock

GN_NEEDS_RSU_SIGNATURE = "gn-needs-rsu-signature"
UNKNOWN_TRANSPORT = "unknown-transport"
NO_TRANSPORT = "no-transport"
SIGNER_UNKNOWN = "signer-certificate-unknown"


class Refused(Exception):
    """A pre-signed message or request refused: ``reason`` is a fixed name, ``path`` the request field."""

    def __init__(self, reason: str, path: str, detail: str) -> None:
        super().__init__(f"{reason}: {path}: {detail}")
        self.reason, self.path, self.detail = reason, path, detail


@dataclass(frozen=True)
class Request:
    data: bytes
    transports: tuple[str, ...] | None
    interval_s: float | None
    count: int


def parse_request(obj: Any, *, max_repetitions: int, min_interval: float) -> Request:
    """The JSON body of ``POST /v1/forward`` -> :class:`Request`; every problem at once (reason ``validation``)."""
    if not isinstance(obj, dict):
        raise Refused("bad-request", "", "body must be a JSON object")
    problems: list[tuple[str, str]] = []
    for k in obj:
        if k not in ("data", "transports", "repetition"):
            problems.append((k, "unknown field (expected data, transports, repetition)"))
    data = b""
    raw = obj.get("data")
    if not isinstance(raw, str) or not raw:
        problems.append(("data", "required: base64 of the EtsiTs103097Data-Signed (COER)"))
    else:
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            problems.append(("data", "not base64"))
    transports = obj.get("transports")
    if transports is not None and (
        not isinstance(transports, list) or not transports or not all(isinstance(t, str) for t in transports)
    ):
        problems.append(("transports", "a non-empty list of transport names"))
    interval: Any = None  # JSON values, checked below
    count: Any = 1
    rep = obj.get("repetition")
    if rep is not None:
        if not isinstance(rep, dict):
            problems.append(("repetition", "an object {interval_s, count}"))
        else:
            for k in rep:
                if k not in ("interval_s", "count"):
                    problems.append((f"repetition.{k}", "unknown field (expected interval_s, count)"))
            interval, count = rep.get("interval_s"), rep.get("count")
            if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval >= min_interval:
                problems.append(("repetition.interval_s", f"a number of seconds >= {min_interval}"))
            if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= max_repetitions:
                problems.append(("repetition.count", f"an integer 1..{max_repetitions} (transmissions in all)"))
    if problems:
        raise Refused(
            "validation", problems[0][0] if len(problems) == 1 else "", "; ".join(f"{p}: {r}" for p, r in problems)
        )
    return Request(
        data,
        tuple(transports) if transports else None,
        float(interval) if interval is not None else None,
        int(count) if rep is not None else 1,
    )


def precheck(data: bytes, known_certificate) -> None:
    """Structure and signer form, before the verifier sees the bytes (no message is ever held)."""
    from rsu.security.verify import ParseError, parse_signed

    try:
        msg = parse_signed(data)
    except ParseError as e:
        raise Refused(str(e.reason), "data", e.detail) from None
    if msg.payload is None:
        raise Refused("not-signed-data", "data", "the signed payload does not carry the PDU as unsecuredData")
    form, ident = msg.signer[0], msg.signer[1]
    if form == "digest" and known_certificate(ident) is None:
        raise Refused(
            SIGNER_UNKNOWN,
            "data",
            f"signed by digest {bytes(ident).hex()}, a certificate this RSU "
            "does not hold: sign pre-signed messages with the full certificate",
        )


def verified(result) -> None:
    """Refuse unless the verifier accepted (signature, time, chain, ITS-AID and SSP against the content)."""
    if result.held:
        raise Refused(SIGNER_UNKNOWN, "data", "the signer's certificate is unknown")
    if not result.ok:
        raise Refused(str(result.reason), "data", result.detail or str(result.reason))


def choose_transports(
    requested: tuple[str, ...] | None, configured: list[str] | None, kinds: dict[str, str]
) -> list[str]:
    """The transport names to send on. ``kinds``: name -> type ("mqtt", "gn-udp") of every transport."""
    names = list(requested or configured or [n for n, k in kinds.items() if k == "mqtt"])
    unknown = [n for n in names if n not in kinds]
    if unknown:
        raise Refused(UNKNOWN_TRANSPORT, "transports", f"not configured: {', '.join(unknown)}")
    gn = [n for n in names if kinds[n] != "mqtt"]
    if gn:
        raise Refused(
            GN_NEEDS_RSU_SIGNATURE,
            "transports",
            f"{', '.join(gn)}: a secured GeoNetworking packet signs the RSU's own GN headers, which "
            "a centre cannot sign; pre-signed messages go on MQTT transports only",
        )
    if not names:
        raise Refused(NO_TRANSPORT, "transports", "no MQTT transport is configured")
    return names


@dataclass
class Entry:
    ident: int
    data: bytes
    message: str
    transports: list[str]
    interval_s: float
    remaining: int
    next_at: float

    def to_json(self) -> dict:
        from rsu.clock import iso_utc

        return {
            "id": self.ident,
            "message": self.message,
            "transports": self.transports,
            "interval_s": self.interval_s,
            "remaining": self.remaining,
            "next_at": iso_utc(self.next_at),
        }


class Schedule:
    """Repeating pre-signed messages, in SQLite (survives kill -9); ids never go backwards."""

    def __init__(self, path: Path | str, clock: Clock) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self._db = sqlite3.connect(str(path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # an accepted request is acknowledged state
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS presigned (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "data BLOB NOT NULL, message TEXT NOT NULL, transports TEXT NOT NULL, "
            "interval REAL NOT NULL, remaining INTEGER NOT NULL, next_at REAL NOT NULL)"
        )

    def add(self, data: bytes, message: str, transports: list[str], interval_s: float, remaining: int) -> Entry:
        """A repeating message whose first transmission was just sent; ``remaining``: transmissions left."""
        next_at = self.clock.now() + interval_s
        cur = self._db.execute(
            "INSERT INTO presigned (data, message, transports, interval, remaining, next_at) VALUES (?, ?, ?, ?, ?, ?)",
            (bytes(data), message, json.dumps(transports), interval_s, remaining, next_at),
        )
        assert cur.lastrowid is not None  # set by the INSERT
        return Entry(cur.lastrowid, bytes(data), message, transports, interval_s, remaining, next_at)

    def entries(self) -> list[Entry]:
        rows = self._db.execute(
            "SELECT id, data, message, transports, interval, remaining, next_at FROM presigned ORDER BY id"
        ).fetchall()
        return [Entry(i, bytes(d), m, json.loads(t), iv, r, n) for i, d, m, t, iv, r, n in rows]

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM presigned").fetchone()[0]

    def next_deadline(self) -> float | None:
        row = self._db.execute("SELECT MIN(next_at) FROM presigned").fetchone()
        return row[0] if row else None

    def due(self) -> list[Entry]:
        """Entries due now, each counted as sent once (the next slot planned, or the entry removed)."""
        now = self.clock.now()
        out = []
        for e in self.entries():
            if e.next_at > now:
                continue
            e.remaining -= 1
            # a late loop sends once, then keeps the cadence from now (no burst of missed slots)
            e.next_at += e.interval_s
            if e.next_at <= now:
                e.next_at = now + e.interval_s
            if e.remaining <= 0:
                self._db.execute("DELETE FROM presigned WHERE id = ?", (e.ident,))
            else:
                self._db.execute(
                    "UPDATE presigned SET remaining = ?, next_at = ? WHERE id = ?", (e.remaining, e.next_at, e.ident)
                )
            out.append(e)
        return out

    def cancel(self, ident: int) -> bool:
        return self._db.execute("DELETE FROM presigned WHERE id = ?", (ident,)).rowcount > 0

    def close(self) -> None:
        self._db.close()
