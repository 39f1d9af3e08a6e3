"""The pool of authorization tickets (ATs) and the choice of the AT that signs each message.

Sans-I/O except :meth:`AtPool.load_directory`: selection uses the injected clock only.

Rules:

* a message is signed by an AT that is valid *now* and whose SSP for the
  service's ITS-AID permits the content (:func:`rsu.security.ssp.check`);
* per ITS-AID the pool keeps using the same AT (receivers cache it by digest)
  until it enters the rotation margin (``rotation_margin`` seconds before its
  end); then it switches to another permitting AT that is outside the margin.
  The old AT stays usable until its real end if no successor exists, so there
  is never a gap; ``hours_to_expiry`` shows how close that is;
* if no AT permits the content, :class:`SigningRefused` names what is missing.

A choice is remembered per (ITS-AID, requirement) for as long as nothing it depends on can have
changed: the same ticket list (``replace`` or assigning ``tickets`` starts afresh), the same rotation
margin, the same current AT for the ITS-AID, and the clock inside the interval where no ticket starts,
ends or enters its rotation margin. So the services' permission check and the signature that follows
choose once, and a rotation or an expiry still takes effect at the first message after it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsu import clock as clockmod
from rsu.catalog import MessageKind
from rsu.security import ssp as sspmod
from rsu.security.certs import Certificate, CertificateError
from rsu.security.keys import KeyMaterialError, load_private_key
from rsu.security.sign import Signer

CHOICES_KEPT = 256  # remembered AT choices (per ITS-AID and requirement); all forgotten when full


class SigningRefused(Exception):
    """No available AT may sign this content. Nothing is sent."""

    def __init__(self, kind: MessageKind, missing: tuple[str, ...], detail: str) -> None:
        super().__init__(f"refusing to sign {kind.pdu} (ITS-AID {kind.its_aid}): {detail}")
        self.kind = kind
        self.missing = missing
        self.detail = detail


@dataclass(eq=False)
class AuthorizationTicket:
    certificate: Certificate
    signer: Signer
    label: str = ""

    @property
    def hashed_id8(self) -> bytes:
        return self.certificate.hashed_id8

    def ssp(self, psid: int) -> bytes | None:
        return self.certificate.app_permissions.get(psid)


_Choice = tuple["AuthorizationTicket", float, float, list["AuthorizationTicket"], int, float]


class AtPool:
    def __init__(
        self,
        tickets: list[AuthorizationTicket],
        clock: clockmod.Clock,
        *,
        rotation_margin: float = 3600.0,
        issuers: Iterable[Certificate] = (),
    ) -> None:
        self.tickets = list(tickets)
        self.clock = clock
        self.rotation_margin = rotation_margin
        self.issuers = list(issuers)  # AA / root certificates, for requestedCertificate answers
        self._current: dict[int, AuthorizationTicket] = {}
        # (psid, requirement) -> (the choice, the ITS-seconds interval [lo, hi) it holds in, the ticket list
        # and its length, the rotation margin it was made with); bounded by CHOICES_KEPT
        self._chosen: dict[tuple[int, sspmod.Requirement], _Choice] = {}

    @classmethod
    def load_directory(cls, path: str | Path, clock: clockmod.Clock, **kw: Any) -> AtPool:
        """Every ``NAME.oer``/``NAME.cert`` with a ``NAME.key``/``NAME.vkey`` beside it is an AT."""
        folder = Path(path)
        tickets = []
        for cert_file in sorted(list(folder.glob("*.oer")) + list(folder.glob("*.cert"))):
            key_file = next(
                (k for k in (cert_file.with_suffix(".key"), cert_file.with_suffix(".vkey")) if k.exists()), None
            )
            if key_file is None:
                continue
            cert = Certificate.load(cert_file)
            key = load_private_key(key_file, cert.key_curve.name)
            tickets.append(AuthorizationTicket(cert, Signer(cert, key), cert_file.stem))
        if not tickets:
            raise CertificateError(f"{folder}: no AT certificate with a private key found")
        return cls(tickets, clock, **kw)

    def replace(self, tickets: list[AuthorizationTicket]) -> None:
        """New tickets without a restart (the PKI client fetched or dropped some): the choice per ITS-AID
        starts again, keeping an AT still in the new set (receivers keep their cached digest)."""
        ids = {t.hashed_id8 for t in tickets}
        self.tickets = list(tickets)
        kept = {t.hashed_id8: t for t in self.tickets}
        self._current = {psid: kept[t.hashed_id8] for psid, t in self._current.items() if t.hashed_id8 in ids}

    # ------------------------------------------------------------------ selection
    def select(self, kind: MessageKind, requirement: sspmod.Requirement) -> AuthorizationTicket:
        """The AT that signs ``kind`` content needing ``requirement`` now (see the rules above).

        Raises :class:`SigningRefused` when no AT valid now permits it."""
        its = clockmod.posix_to_its_seconds(self.clock.now())
        psid = kind.its_aid
        key = (psid, requirement)
        hit = self._chosen.get(key)
        if hit is not None:
            kept, lo, hi, tickets, count, margin = hit
            if (
                lo <= its < hi
                and tickets is self.tickets
                and count == len(tickets)
                and margin == self.rotation_margin
                and self._current.get(psid) is kept
            ):
                return kept
        at = self._select(kind, requirement, its, psid)
        lo, hi = -math.inf, math.inf
        for t in self.tickets:  # the instants where validity or freshness of some ticket changes
            end = t.certificate.end
            for b in (t.certificate.start, end, end - self.rotation_margin):
                if b <= its:
                    lo = max(lo, b)
                else:
                    hi = min(hi, b)
        if len(self._chosen) >= CHOICES_KEPT:
            self._chosen.clear()
        self._chosen[key] = (at, lo, hi, self.tickets, len(self.tickets), self.rotation_margin)
        return at

    def _select(self, kind: MessageKind, requirement: sspmod.Requirement, its: float, psid: int) -> AuthorizationTicket:
        valid = [t for t in self.tickets if t.certificate.valid_at_its(its) and psid in t.certificate.app_permissions]
        if not valid:
            raise SigningRefused(kind, ("its-aid",), f"no AT valid now carries ITS-AID {psid}")
        checks = [(t, sspmod.check(kind, t.ssp(psid), requirement=requirement)) for t in valid]
        permitting = [t for t, c in checks if c.ok]
        if not permitting:
            # name the smallest set of missing permissions among the valid ATs
            _, best = min(checks, key=lambda tc: len(tc[1].missing))
            raise SigningRefused(kind, best.missing, f"no available AT permits this content: {best.detail}")
        fresh = [t for t in permitting if t.certificate.end - its > self.rotation_margin]
        cur = self._current.get(psid)
        if cur is not None and cur in permitting and (cur in fresh or not fresh):
            return cur
        pick = min(fresh or permitting, key=lambda t: t.certificate.end if fresh else -t.certificate.end)
        self._current[psid] = pick
        return pick

    def current(self, kind: MessageKind) -> AuthorizationTicket | None:
        return self._current.get(kind.its_aid)

    def hours_to_expiry(self, kind: MessageKind) -> float | None:
        """Hours until the AT currently used for ``kind`` expires (None before its first use)."""
        t = self._current.get(kind.its_aid)
        if t is None:
            return None
        return t.certificate.seconds_to_expiry(self.clock.now()) / 3600.0

    def status(self) -> list[dict[str, Any]]:
        now = self.clock.now()
        in_use = {id(t) for t in self._current.values()}
        return [
            {
                "label": t.label,
                "hashedId8": t.hashed_id8.hex(),
                "psids": sorted(t.certificate.app_permissions),
                "validNow": t.certificate.valid_at(now),
                "hoursToExpiry": round(t.certificate.seconds_to_expiry(now) / 3600.0, 3),
                "inUse": id(t) in in_use,
            }
            for t in self.tickets
        ]


__all__ = ["AtPool", "AuthorizationTicket", "SigningRefused", "KeyMaterialError"]
