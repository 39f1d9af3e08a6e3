"""A secured RSU for the conformance tests: the real service layer guarded by the real security layer.

The services' sender-side guard is the daemon's own ``permission_check`` over a real AT pool
(real keys, real certificates from a test root and AA); a transmission is signed the way the
daemon signs it for an indirect transport, and a receiver checks it with the real verifier.
Import the ``secured`` fixture into a test module with ``from services.secured import secured``.
"""

from __future__ import annotations

import functools

import pytest

from rsu import catalog
from rsu import clock as clockmod
from rsu.security import pki, ssp
from rsu.security.pool import AtPool, AuthorizationTicket
from rsu.security.request import SignRequest
from rsu.security.service import SecurityService
from rsu.security.setup import permission_check
from rsu.security.sign import Signer
from rsu.security.verify import TrustStore, Verifier, parse_signed
from rsu.services.layer import ServiceLayer, ServicesConfig
from services.support import PROVIDER, START, STATION

OWN_PROVIDER = ssp.ServiceProvider.of(PROVIDER["countryCode"], PROVIDER["providerIdentifier"])


@functools.cache
def authorities() -> tuple[pki.Issued, pki.Issued]:
    """(root, AA) of the test PKI, made once per test session."""
    from rsu.clock import ManualClock

    t32 = clockmod.time32(ManualClock(START).now() - 86400)
    root = pki.make_root(t32)
    return root, pki.make_aa(root, t32)


def trust() -> TrustStore:
    root, aa = authorities()
    t = TrustStore()
    t.add(root.certificate, aa.certificate)
    return t


def make_at(clock, permissions: dict) -> pki.Issued:
    """An AT valid now for ``{kind: SSP bytes (None: full permissions of that service)}``."""
    _, aa = authorities()
    perms = []
    for kind, ssp_bytes in permissions.items():
        kind = catalog.by_name(kind) if isinstance(kind, str) else kind
        if ssp_bytes is None:
            ssp_bytes = ssp.full(kind, OWN_PROVIDER if ssp.layout(kind).provider_octets else None)
        perms.append((kind.its_aid, ssp_bytes))
    return pki.make_at(aa, clockmod.time32(clock.now() - 3600), perms)


class SecuredRsu:
    """A ServiceLayer whose ATs are ``ats``; :meth:`sent` signs what is due, :meth:`verify` checks it."""

    def __init__(self, state_dir, clock, codec, ats: list[pki.Issued], **config) -> None:
        root, aa = authorities()
        pool = AtPool(
            [AuthorizationTicket(a.certificate, Signer(a.certificate, a.key)) for a in ats],
            clock,
            issuers=[aa.certificate, root.certificate],
        )
        self.clock = clock
        self.codec = codec
        self.security = SecurityService(pool, Verifier(clock, trust(), codec=codec), clock)
        config.setdefault("station_id", STATION)
        config.setdefault("ivi_provider", PROVIDER)
        self.layer = ServiceLayer(
            ServicesConfig(state_dir, **config),
            clock=clock,
            codec=codec,
            permission_check=permission_check(self.security),
        )
        self.receiver = Verifier(clock, trust(), codec=codec)

    def sent(self, service: str | None = None, now: float | None = None) -> list[tuple]:
        """[(Transmission, signed bytes)] of what is due, signed as the daemon signs it."""
        out = []
        for tx in self.layer.due(now):
            if service is None or tx.service == service:
                out.append((tx, self.security.sign(SignRequest(tx.requirement, tx.pdu, 0, with_certificate=True))))
        return out

    def verify(self, data: bytes, kind=None):
        """A neighbour's view: the real verifier (chain, signature, ITS-AID, SSP against the content)."""
        return self.receiver.verify(data, kind)

    def receive(self, data: bytes, kind) -> tuple:
        """(verification result, published event or None): a secured message received as the daemon takes it
        (verify with our security service, hand what passed to the services with the signer's ITS-AID and SSP)."""
        r = self.security.verify(data, kind)
        if not r.ok:
            return r, None
        security = {
            "its_aid": r.psid,
            "ssp": r.ssp.hex() if r.ssp is not None else None,
            "signer": r.signer_id.hex() if r.signer_id else None,
            "verification": "ok",
        }
        return r, self.layer.on_received(r.pdu, security, {"transport": "test"})


def peer_signed(clock, at: pki.Issued, kind, pdu: bytes) -> bytes:
    """``pdu`` signed by another station's AT (full certificate as signer)."""
    kind = catalog.by_name(kind) if isinstance(kind, str) else kind
    return Signer(at.certificate, at.key).sign(pdu, kind.its_aid, clockmod.time64(clock.now()), with_certificate=True)


def signed_header(data: bytes) -> dict:
    return parse_signed(data).header


def signer_certificate(data: bytes):
    from rsu.security.certs import Certificate

    msg = parse_signed(data)
    assert msg.signer[0] == "certificate"
    return Certificate.from_bytes(msg.signer_cert_bytes)


@pytest.fixture
def secured(tmp_path, clock, codec):
    """``secured({"spatem": None, "mapem": b"\\x01\\x80"}, ...)``: a SecuredRsu (own state directory) whose
    ATs carry the given permissions, one AT per dict (``None``: the service's full SSP)."""
    made: list[SecuredRsu] = []

    def make(*at_permissions: dict, **config) -> SecuredRsu:
        ats = [make_at(clock, p) for p in at_permissions]
        rsu = SecuredRsu(tmp_path / f"secured{len(made)}", clock, codec, ats, **config)
        made.append(rsu)
        return rsu

    yield make
    for rsu in made:
        rsu.layer.close()
