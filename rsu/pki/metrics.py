"""Prometheus metrics of the PKI client, read from its state at scrape time (a custom collector).

Register on the daemon's registry: ``registry.register(PkiCollector(client, clock))``.

* ``rsu_pki_ec_hours_to_expiry`` (absent without an EC; negative once expired)
* ``rsu_pki_ats_available`` (usable ATs: valid, AA listed, root trusted) and
  ``rsu_pki_at_hours_to_expiry`` (of the usable AT that lives longest)
* ``rsu_pki_trust_list_age_seconds{list}`` (since the list was applied; grows while the
  CPOC/DC is unreachable) and ``rsu_pki_trust_list_next_update_seconds{list}`` (negative: expired)
* ``rsu_pki_crl_entries{root}``
* ``rsu_pki_attempts_total{job, result}`` (result: ``ok``, a response code, or a failure reason)
"""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from rsu import clock as clockmod
from rsu.pki.client import PkiClient


class PkiCollector:
    def __init__(self, client: PkiClient, clock: clockmod.Clock) -> None:
        self.client, self.clock = client, clock

    def describe(self):
        return []  # collected on demand only

    def collect(self):
        c, now = self.client, self.clock.now()
        ec = GaugeMetricFamily("rsu_pki_ec_hours_to_expiry", "Hours until the enrolment credential expires")
        if c.ec is not None:
            ec.add_metric([], (c.ec.certificate.end_posix - now) / 3600)
        yield ec
        usable = c.usable_ats(now)
        yield GaugeMetricFamily("rsu_pki_ats_available", "Usable authorization tickets", value=len(usable))
        at = GaugeMetricFamily("rsu_pki_at_hours_to_expiry", "Hours until the longest-lived usable AT expires")
        if usable:
            at.add_metric([], (max(a.certificate.end_posix for a in usable) - now) / 3600)
        yield at
        age = GaugeMetricFamily(
            "rsu_pki_trust_list_age_seconds", "Seconds since the trust list was applied", labels=["list"]
        )
        nxt = GaugeMetricFamily(
            "rsu_pki_trust_list_next_update_seconds", "Seconds until the list's nextUpdate", labels=["list"]
        )
        for key, entry in sorted(c.trust_applied.items()):
            age.add_metric([key], now - entry["at"])
            state = c._list_state(key)
            if state is not None:
                nxt.add_metric([key], clockmod.time32_to_posix(state.next_update) - now)
        yield age
        yield nxt
        crl = GaugeMetricFamily("rsu_pki_crl_entries", "Entries of the applied CRL", labels=["root"])
        for h8, root in sorted(c.trust.roots.items()):
            if root.crl is not None:
                crl.add_metric([h8.hex()], len(root.revoked))
        yield crl
        attempts = CounterMetricFamily(
            "rsu_pki_attempts", "PKI client attempts by job and result", labels=["job", "result"]
        )
        for (job, result), n in sorted(c.attempts.items()):
            attempts.add_metric([job, result], n)
        yield attempts
