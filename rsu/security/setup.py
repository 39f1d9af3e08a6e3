"""Building the security layer from the daemon's configuration.

Takes the parsed :class:`rsu.ops.config.Config` (its ``security`` section, the state paths, the IVI
provider), a clock and, when ``pki:`` is configured, the PKI client's runtime; gives a
:class:`rsu.security.service.SecurityService` (or None when security is disabled) and the services'
sender-side permission check built on it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rsu import catalog
from rsu.clock import Clock

if TYPE_CHECKING:
    from rsu.ops.config import Config
    from rsu.pki.runtime import PkiRuntime
    from rsu.security.service import SecurityService

log = logging.getLogger("rsu.security")


def build_security(
    config: Config, clock: Clock, on_limit: Callable[[str], None] | None = None, pki: PkiRuntime | None = None
) -> SecurityService | None:
    """The SecurityService for ``config`` (creating the local test PKI when allowed), or None.

    ``pki`` (a :class:`rsu.pki.runtime.PkiRuntime`, when ``pki:`` is configured): the pool starts
    empty and takes the client's ATs (``pki.pick_up``), no test PKI is made, and the verifier
    consults the client's trust store (ECTL roots, CTL authorities, CRLs) besides ``trust_dir``."""
    if not config.security.enabled:
        return None
    from rsu.security import ssp as sspmod
    from rsu.security.pki import init_pki
    from rsu.security.pool import AtPool
    from rsu.security.service import SecurityService
    from rsu.security.verify import TrustStore, Verifier

    sec = config.security
    tickets = config.tickets_path
    if pki is None and sec.create_test_pki and needs_test_pki(config, clock):
        provider = sspmod.ServiceProvider.of(config.services.ivi_provider.country, config.services.ivi_provider.issuer)
        init_pki(config.pki_path, now=clock.now(), at_hours=sec.test_pki_at_hours, provider=provider)
        log.warning("created a local TEST PKI in %s: fine for a bench, not trusted by any vehicle", config.pki_path)
    if pki is None:
        trust = TrustStore.from_directory(config.trust_path)
        pool = AtPool.load_directory(tickets, clock, rotation_margin=sec.rotation_margin, issuers=trust.certificates())
    else:  # operator certificates in trust_dir still count, if any; the client's store decides the roots
        trust = TrustStore.from_directory(config.trust_path) if config.trust_path.is_dir() else TrustStore()
        pool = AtPool([], clock, rotation_margin=sec.rotation_margin, issuers=trust.certificates())
    lim = sec.limits
    limit_hit: Callable[[str], None] = on_limit or (lambda name: None)
    verifier = Verifier(
        clock,
        trust,
        max_age=sec.max_age,
        max_future=sec.max_future,
        cache_size=lim.certificate_cache,
        hold_seconds=lim.hold_seconds,
        hold_limit=lim.held_frames,
        on_limit=limit_hit,
        pki_trust=(lambda: pki.client.trust) if pki is not None else None,
    )
    return SecurityService(
        pool,
        verifier,
        clock,
        certificate_interval=sec.certificate_interval,
        p2pcd_per_frame=lim.p2pcd_per_frame,
        p2pcd_pending=lim.p2pcd_pending,
        p2pcd_max_age=lim.p2pcd_max_age,
        replay_entries=lim.replay_entries,
        on_limit=limit_hit,
    )


def needs_test_pki(config: Config, clock: Clock) -> bool:
    """No authorization ticket at all, or a test PKI we made whose ATs have all expired (renewed at start)."""
    tickets = list(config.tickets_path.glob("*.oer")) if config.tickets_path.is_dir() else []
    if not tickets:
        return True
    if not (config.pki_path / "pki.json").exists():
        return False  # operator's PKI: never overwritten
    from rsu.security.certs import Certificate

    now = clock.now()
    return not any(Certificate.load(p).valid_at(now) for p in tickets)


def permission_check(security: SecurityService) -> Callable[[catalog.MessageKind, dict[str, Any]], str | None]:
    """The services' sender-side guard: which permission is missing for this content (None: fine)."""
    from rsu.security import ssp as sspmod
    from rsu.security.pool import SigningRefused

    def check(kind: catalog.MessageKind, value: dict[str, Any]) -> str | None:
        try:
            security.pool.select(kind, sspmod.required(kind, value))
        except SigningRefused as e:
            missing = ", ".join(e.missing) if e.missing else "permission"
            return f"{missing} ({e.detail})"
        return None

    return check
