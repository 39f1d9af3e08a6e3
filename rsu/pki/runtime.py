"""The PKI client inside the daemon: opened from the ``pki:`` section, driven by
:func:`rsu.pki.http.run_forever`, and the source of the AT pool's tickets.

* :meth:`PkiRuntime.open`: key store, canonical identity (made on first start), client state
  (the last good trust store, EC and ATs from disk), HTTP transport. Nothing here touches the
  network: the first start of a new RSU signs nothing until the client has enrolled and fetched ATs.
* :meth:`PkiRuntime.signing_tickets`: the ATs the sender may use now: usable by the client
  (valid, AA listed and unrevoked under a root of the applied ECTL valid now) *and* whose region
  covers the station position (:mod:`rsu.security.region`); the others are named in ``refused``.
* :meth:`PkiRuntime.pick_up`: gives the pool those tickets when the set changed (after every
  outcome of the client, and by the daemon's housekeeping, so an expiry or a CRL applies without
  waiting for the next request): the signer never restarts.
* :meth:`PkiRuntime.run`: the client's loop until the stop event, then the HTTP session and key
  store are closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rsu import clock as clockmod
from rsu import statelock
from rsu.pki import config as pkicfg
from rsu.security.region import covers

if TYPE_CHECKING:  # the client is imported when ``pki:`` is configured (PkiRuntime.open)
    from rsu.pki.client import Outcome, PkiClient

log = logging.getLogger("rsu.pki")


class PkiRuntime:
    def __init__(
        self,
        section: pkicfg.PkiClientSection,
        client: PkiClient,
        store,
        transport,
        clock: clockmod.Clock,
        position: tuple[float, float],
    ) -> None:
        self.section, self.client, self.store, self.transport = section, client, store, transport
        self.clock = clock
        self.position = position
        self.refused: dict[str, str] = {}  # AT HashedId8 -> why the sender does not use it
        self.region_unchecked: dict[str, str] = {}  # AT HashedId8 -> region type accepted unchecked
        self._given: tuple[bytes, ...] | None = None  # the tickets given to ``_pool``
        self._pool = None  # a reload that rebuilds the security layer brings a new pool
        self._closed = False
        self._lock: int | None = None  # the shared state lock (rsu.pki.client.lock_state), released at close
        self.wake = asyncio.Event()  # set: the client looks at what is due now (e.g. the clock jumped)

    @classmethod
    def open(cls, config, clock: clockmod.Clock) -> PkiRuntime:
        """From the daemon's configuration (``config.pki`` set); raises PkiError/ValueError when the key
        store or identity cannot be opened (the daemon does not start: a configuration problem)."""
        from rsu.pki.client import PkiClient, lock_state
        from rsu.pki.identity import ensure_identity

        section = config.pki
        state = pkicfg.state_path(section, config.state_path)
        provider = config.services.ivi_provider.service_provider
        lock = lock_state(state, exclusive=False)  # held while the daemon runs: `rsu pki enrol` etc. wait
        try:
            store = pkicfg.open_store(section, config.state_path)
        except BaseException:
            statelock.release(lock)
            raise
        try:
            ensure_identity(store, state, pkicfg.its_id_bytes(section.its_id))
            client = PkiClient.load(pkicfg.client_config(section, provider), store, state)
        except BaseException:
            store.close()
            statelock.release(lock)
            raise
        for error in client.load_errors:
            log.error("PKI state %s: %s (ignored)", state, error)
        pos = config.station.position
        runtime = cls(section, client, store, pkicfg.transport(section), clock, (pos.latitude, pos.longitude))
        runtime._lock = lock
        return runtime

    # ------------------------------------------------------------------ tickets for the sender
    def signing_tickets(self, now: float) -> list:
        tickets, refused, unchecked = [], {}, {}
        for t in self.client.tickets(now):
            cov = covers(t.certificate.region, *self.position)
            h8 = t.hashed_id8.hex()
            if not cov.covered:
                refused[h8] = f"region does not cover the station position: {cov.detail}"
                continue
            if not cov.checked:
                unchecked[h8] = cov.detail
            tickets.append(t)
        for h8 in set(refused) - set(self.refused):
            log.error("PKI: AT %s not used: %s", h8, refused[h8])
        self.refused, self.region_unchecked = refused, unchecked
        return tickets

    def pick_up(self, pool) -> bool:
        """Give ``pool`` the signing tickets if they changed; True when it did."""
        now = self.clock.now()
        ids = tuple(sorted(a.certificate.hashed_id8 for a in self.client.usable_ats(now)))
        if ids == self._given and pool is self._pool:
            return False
        tickets = self.signing_tickets(now)
        pool.replace(tickets)
        pool.issuers = self.issuers()
        self._given, self._pool = ids, pool
        log.info(
            "PKI: the signer uses %d AT(s): %s", len(tickets), ", ".join(t.hashed_id8.hex() for t in tickets) or "none"
        )
        return True

    def issuers(self) -> list:
        """AA and root certificates of the applied lists (answers to requestedCertificate)."""
        trust = self.client.trust
        out = [r.certificate for r in trust.roots.values()]
        for r in trust.roots.values():
            out += [a.certificate for a in r.aas.values()]
        return out

    # ------------------------------------------------------------------ running
    async def run(self, stop: asyncio.Event, on_outcome: Callable[[Outcome], None]) -> None:
        from rsu.pki.http import run_forever

        try:
            await run_forever(self.client, self.transport, self.clock, stop, on_outcome=on_outcome, wake=self.wake)
        finally:
            await self.close()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self.transport.close()
            self.store.close()
        finally:
            statelock.release(self._lock)
            self._lock = None

    def status(self) -> dict[str, Any]:
        """The client's status (EC, ATs, trust store and its age, jobs with their last errors) and what
        the sender refused."""
        now = self.clock.now()
        out = self.client.status(now)
        out["signing"] = {
            "position": list(self.position),
            "refused": dict(self.refused),
            "regionNotChecked": dict(self.region_unchecked),
        }
        return out


class CurrentPkiCollector:
    """The PKI client's metrics (:class:`rsu.pki.metrics.PkiCollector`) of the runtime the daemon has
    now (a reload may replace it; none: no series). Registered once on the daemon's registry."""

    def __init__(self, current: Callable[[], PkiRuntime | None]) -> None:
        self.current = current

    def describe(self):
        return []

    def collect(self):
        from rsu.pki.metrics import PkiCollector

        runtime = self.current()
        if runtime is not None:
            yield from PkiCollector(runtime.client, runtime.clock).collect()


class PkiLink:
    """The daemon's PKI client slot: the runtime of the ``pki:`` section (none without it), its loop as a
    task, and the hand-over of its ATs to whichever security entity is current (a reload may replace
    both). Takes the configuration, a clock and ``security()`` (the current
    :class:`rsu.security.service.SecurityService` or None); gives :attr:`runtime` (status, metrics)."""

    def __init__(self, clock: clockmod.Clock, security: Callable[[], Any]) -> None:
        self.clock = clock
        self.security = security
        self.runtime: PkiRuntime | None = None
        self.task: asyncio.Task | None = None  # the client's loop while it runs
        self._stop = asyncio.Event()

    def open(self, config) -> None:
        """The PKI client of ``pki:`` (none without it, or with security off); a key store that cannot be
        opened raises (the start stops there)."""
        self.runtime = None
        if config.pki is not None and config.security.enabled:
            self.runtime = PkiRuntime.open(config, self.clock)

    def start(self) -> None:
        """Run the client's loop; every outcome hands the ATs over (:meth:`pick_up`)."""
        if self.runtime is not None:
            self._stop = asyncio.Event()
            self.task = asyncio.create_task(
                self.runtime.run(self._stop, lambda outcome: self.pick_up()), name="rsu-pki"
            )

    async def stop(self) -> None:
        """Stop the client's loop (an HTTP exchange in progress is abandoned: nothing half-applied)."""
        self._stop.set()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
            self.task = None
        if self.runtime is not None:
            await self.runtime.close()

    def wake(self) -> bool:
        """The admin's "PKI check now" (POST /v1/admin/pki/check): the client does now what is due; False
        without a client."""
        if self.runtime is None:
            return False
        self.runtime.wake.set()
        return True

    def pick_up(self) -> None:
        """The signer takes the client's usable ATs (after each client outcome, and every housekeeping pass:
        expiries and CRLs apply without a request); our own ATs verify our looped-back messages."""
        security = self.security()
        if self.runtime is None or security is None:
            return
        if self.runtime.pick_up(security.pool):
            for t in security.pool.tickets:
                security.verifier.add_certificate(t.certificate)
