"""Fixtures for the security tests: a real test PKI (real keys, real signatures), a pinned clock."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from sechelp import NOW, TestPki  # noqa: E402

from rsu import catalog  # noqa: E402
from rsu import clock as clockmod
from rsu.clock import ManualClock  # noqa: E402
from rsu.security import pki  # noqa: E402
from rsu.security.pool import AtPool  # noqa: E402
from rsu.security.service import SecurityService  # noqa: E402
from rsu.security.verify import Verifier  # noqa: E402


@pytest.fixture(scope="session")
def test_pki() -> TestPki:
    t32 = clockmod.time32(NOW - 3600)
    root = pki.make_root(t32 - 86400)
    aa = pki.make_aa(root, t32 - 3600)
    ats = {k.name: None for k in catalog.MESSAGES}
    p = TestPki(root, aa, ats)
    for k in catalog.MESSAGES:
        p.ats[k.name] = p.at(k)
    return p


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def verifier(test_pki, clock, codec) -> Verifier:
    return Verifier(clock, test_pki.trust, codec=codec)


@pytest.fixture
def service(test_pki, clock, codec) -> SecurityService:
    pool = AtPool(
        [test_pki.ticket(i, n) for n, i in test_pki.ats.items()],
        clock,
        issuers=[test_pki.aa.certificate, test_pki.root.certificate],
    )
    return SecurityService(pool, Verifier(clock, test_pki.trust, codec=codec), clock)
