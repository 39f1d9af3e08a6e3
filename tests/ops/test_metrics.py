"""Metric names, labels and the dissemination-rate window."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from rsu.ops.metrics import Metrics


def samples(m: Metrics) -> dict:
    out = {}
    for fam in text_string_to_metric_families(m.exposition().decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_names_follow_prometheus_conventions():
    m = Metrics()
    names = {fam.name for fam in text_string_to_metric_families(m.exposition().decode())}
    m.on_sent("TLM", "spatem", "gn0", repetition=False, now=0)
    for fam in text_string_to_metric_families(m.exposition().decode()):
        assert fam.name.startswith("rsu_"), fam.name
        if fam.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in fam.samples), fam.name
        if fam.type == "histogram":
            assert fam.name.endswith("_seconds"), fam.name
    assert "rsu_up" in names


def test_sent_repeated_dropped_and_rate():
    m = Metrics()
    for i in range(10):
        m.on_sent("TLM", "spatem", "gn0", repetition=False, now=100 + i * 0.1)
    for i in range(3):
        m.on_sent("RLT", "mapem", "gn0", repetition=True, now=100 + i)
    m.drop("gn0", "malformed-gn")
    m.drop("gn0", "malformed-gn")
    m.update_rates(now=105)
    s = samples(m)
    assert s[("rsu_messages_sent_total", (("message", "spatem"), ("service", "TLM"), ("transport", "gn0")))] == 10
    assert s[("rsu_messages_repeated_total", (("message", "mapem"), ("service", "RLT"), ("transport", "gn0")))] == 3
    assert s[("rsu_messages_dropped_total", (("reason", "malformed-gn"), ("transport", "gn0")))] == 2
    assert s[("rsu_dissemination_rate_per_second", (("message", "spatem"), ("transport", "gn0")))] == 1.0
    m.update_rates(now=200)  # window passed: the rate falls to zero rather than freezing
    s = samples(m)
    assert s[("rsu_dissemination_rate_per_second", (("message", "spatem"), ("transport", "gn0")))] == 0.0


def test_registries_are_separate():
    a, b = Metrics(), Metrics()
    a.drop("x", "y")
    assert ("rsu_messages_dropped_total", (("reason", "y"), ("transport", "x"))) not in samples(b)


def test_late_sends_and_receive_accounting_rows():
    from rsu.ops.metrics import LATE_AFTER_S

    m = Metrics()
    m.scheduled("TLM", 0.0)
    m.scheduled("TLM", LATE_AFTER_S + 0.01)
    m.scheduled("IVI", LATE_AFTER_S / 2)
    s = samples(m)
    assert s[("rsu_scheduled_sends_late_total", (("service", "TLM"),))] == 1
    assert ("rsu_scheduled_sends_late_total", (("service", "IVI"),)) not in s
    assert s[("rsu_scheduler_lateness_seconds_count", (("service", "TLM"),))] == 2
    m.drop("gn0", "malformed-gn", "unknown")  # a received frame the transport dropped
    m.drop("gn0", "send-failed")  # an outgoing one: not part of receive accounting
    m.rx("spatem", "gn0")
    m.hold("spatem", "gn0", "held")
    m.rx("spatem", "gn0")
    m.accept("TLM", "spatem", "gn0")
    assert m.receive_accounting() == {
        ("unknown", "gn0"): {"received": 1, "accepted": 0, "dropped": 1, "held": 0},
        ("spatem", "gn0"): {"received": 2, "accepted": 1, "dropped": 0, "held": 1},
    }
    assert samples(m)[("rsu_messages_dropped_total", (("reason", "send-failed"), ("transport", "gn0")))] == 1
