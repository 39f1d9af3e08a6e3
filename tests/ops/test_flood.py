"""Bounded attacker-fed state, measured: 100,000 frames from distinct random signers (each would ask for
a certificate) do not grow the daemon's memory, our outgoing frames never ask for more certificates than
the cap, and valid traffic sent at the same time is still accepted. The daemon runs in this process and
the frames enter at its GN datagram handler (the real receive path)."""

from __future__ import annotations

import pytest

from rsu.clock import ManualClock
from tests.ops.rxharness import Neighbour, flood, running_daemon


@pytest.mark.slow
async def test_a_hundred_thousand_random_signers_leave_memory_flat_and_valid_traffic_accepted(tmp_path):
    clock = ManualClock(1_780_000_000.0)
    async with running_daemon(tmp_path / "state", clock) as d:
        limits = d.config.security.limits
        r = flood(d, Neighbour(d.config.pki_path, clock), clock, 100_000)
        hits = {
            s.labels["limit"]: s.value for s in d.metrics.limit_hits.collect()[0].samples if s.name.endswith("_total")
        }
    assert r["rss_growth_bytes"] < 5 * 1024 * 1024, r
    assert r["valid_accepted"] == r["valid_sent"] == 1000, r
    assert 0 < r["max_inline_requests"] <= limits.p2pcd_per_frame, r  # asks, but never more than the cap
    assert r["pending_requests"] <= limits.p2pcd_pending and r["held"] <= limits.held_frames, r
    assert hits["held-frames"] > 90_000 and hits["p2pcd-pending"] > 90_000, hits  # the bounds were hit, and counted
