"""Shared constants and helpers of the security tests (a unique module name: tests/conftest.py is ``conftest``)."""

from __future__ import annotations

from dataclasses import dataclass

from rsu import catalog
from rsu import clock as clockmod
from rsu.security import pki, ssp
from rsu.security.pool import AuthorizationTicket
from rsu.security.sign import Signer
from rsu.security.verify import TrustStore
from tests.conftest import VECTORS  # noqa: F401  (tests/vectors, with PROVENANCE.md)

NOW = 1748779200.0  # 2025-06-01T12:00:00Z
GB31 = ssp.ServiceProvider.of("GB", 31)


@dataclass
class TestPki:  # not a test class (__test__ = False)
    __test__ = False

    root: pki.Issued
    aa: pki.Issued
    ats: dict  # message name -> Issued (full permissions)

    @property
    def trust(self) -> TrustStore:
        t = TrustStore()
        t.add(self.root.certificate, self.aa.certificate)
        return t

    def at(self, kind, ssp_bytes=None, *, start=None, hours=168, aa=None, curve="ecdsaNistP256"):
        """A fresh AT for one service (full SSP unless given)."""
        kind = catalog.by_name(kind) if isinstance(kind, str) else kind
        lay = ssp.layout(kind)
        if ssp_bytes is None:
            ssp_bytes = ssp.full(kind, GB31 if lay.provider_octets else None)
        start = clockmod.time32(NOW - 3600) if start is None else start
        return pki.make_at(aa or self.aa, start, [(kind.its_aid, ssp_bytes)], hours=hours, curve_name=curve)

    def ticket(self, issued, label=""):
        return AuthorizationTicket(issued.certificate, Signer(issued.certificate, issued.key), label)


def sign_with(issued, payload: bytes, psid: int, t: float = NOW, **kw) -> bytes:
    return Signer(issued.certificate, issued.key).sign(
        payload, psid, clockmod.time64(t), with_certificate=kw.pop("with_certificate", True), **kw
    )
