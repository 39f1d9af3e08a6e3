"""The receive path across reloads (in-process daemon, real sockets, injected clock): a reload that
replaces the security entity drops the frames it held (counted expired) and the new settings and
service layer take the next frames; a services-only reload keeps the GN duplicate table. The receive
accounting identity holds throughout."""

from __future__ import annotations

import copy

import yaml

import tests.security.samples as samples
from rsu import catalog
from rsu.clock import ManualClock
from tests.ops.rxharness import OVER_THE_RSU, Neighbour, feed_gn, running_daemon

START = 1_780_000_000.0


def count(d, metric, *labels: str) -> float:
    return d.metrics.child(metric, *labels)._value.get()


async def reload_with(d, path, change) -> None:
    """SIGHUP's work: write the configuration file with ``change`` made, and reload it."""
    data = d.config.model_dump(mode="json", exclude_unset=True)
    change(data)
    path.write_text(yaml.safe_dump(data))
    d.config_path = str(path)
    assert await d.reload()


async def test_held_frames_leave_with_the_security_entity_and_the_new_one_takes_over(tmp_path):
    clock = ManualClock(START)
    async with running_daemon(tmp_path / "s", clock) as d:
        m = d.metrics
        nb = Neighbour(d.config.pki_path, clock)
        sub = d.layer.subscribe()
        pdu = nb.pdu(catalog.SPATEM, samples.spatem())
        feed_gn(d, nb.frame(catalog.SPATEM, pdu, signer=nb.new_signer(catalog.SPATEM), with_certificate=False))
        feed_gn(d, nb.frame(catalog.SPATEM, pdu, secured=False))
        assert count(d, m.held, "spatem", "gn") == 1
        assert count(d, m.rx_dropped, "spatem", "gn", "unsecured") == 1

        await reload_with(d, tmp_path / "rsu.yaml", lambda c: c["security"].update(accept_unsecured=True))
        assert count(d, m.held, "spatem", "gn") == 0
        assert count(d, m.hold_events, "spatem", "gn", "expired") == 1
        assert count(d, m.rx_dropped, "spatem", "gn", "security:held-expired") == 1
        clock.advance(0.01)
        feed_gn(d, nb.frame(catalog.SPATEM, pdu, secured=False))  # the new setting, the new service layer
        assert count(d, m.accepted, "TLM", "spatem", "gn") == 1
        assert [e["security"].get("secured") for e in sub.drain()] == [False]
        assert d.layer.counts.get("rx_delivered") == 1  # by the layer the reload built
        assert m.receive_accounting()[("spatem", "gn")] == {"received": 3, "accepted": 1, "dropped": 2, "held": 0}


async def test_a_services_only_reload_keeps_the_gn_duplicate_table(tmp_path):
    clock = ManualClock(START)
    async with running_daemon(tmp_path / "s", clock) as d:
        m = d.metrics
        nb = Neighbour(d.config.pki_path, clock)
        gbc = nb.frame(catalog.SPATEM, nb.pdu(catalog.SPATEM, samples.spatem()), area=OVER_THE_RSU)
        feed_gn(d, gbc)
        assert count(d, m.accepted, "TLM", "spatem", "gn") == 1
        layer = d.layer

        def more_entries(c: dict) -> None:
            c["services"]["rules"] = copy.deepcopy(c["services"].get("rules", {})) | {"max_entries": 512}

        await reload_with(d, tmp_path / "rsu.yaml", more_entries)
        assert d.layer is not layer  # a new service layer
        sub = d.layer.subscribe()  # the same hub: IS_DataProviding outlives the layer
        feed_gn(d, gbc)  # the same packet again: its GN source and sequence number are remembered
        assert count(d, m.rx_dropped, "spatem", "gn", "gn-duplicate") == 1
        assert count(d, m.rx_dropped, "spatem", "gn", "replay") == 0
        clock.advance(0.01)
        feed_gn(d, nb.frame(catalog.SPATEM, nb.pdu(catalog.SPATEM, samples.spatem()), area=OVER_THE_RSU))
        assert [e["message"] for e in sub.drain()] == ["spatem"]
        assert d.layer.counts.get("rx_delivered") == 1 and layer.counts.get("rx_delivered") == 1  # one each
        assert m.receive_accounting()[("spatem", "gn")] == {"received": 3, "accepted": 2, "dropped": 1, "held": 0}
