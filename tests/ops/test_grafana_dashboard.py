"""ops/grafana/rsu.json: a well-formed dashboard over the data-source variable, and every metric its
PromQL queries is exported by a running daemon (with the labels the queries group and filter by)."""

from __future__ import annotations

import json
import re

import pytest

from rsu.ops.metrics import Metrics
from tests.conftest import REPO
from tests.netutil import free_tcp_port
from tests.ops.daemonproc import RsuDaemon, group_and_port

DASHBOARD = json.loads((REPO / "ops" / "grafana" / "rsu.json").read_text())

FUNCTIONS = {
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "topk",
    "bottomk",
    "quantile",
    "histogram_quantile",
    "abs",
    "clamp_min",
    "clamp_max",
    "label_values",
    "max_over_time",
    "min_over_time",
    "avg_over_time",
    "changes",
    "resets",
    "time",
    "vector",
    "absent",
    "round",
    "sort",
    "sort_desc",
}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset"}
TARGET_LABELS = {"instance", "job"}  # added by Prometheus at scrape time
SINK = "centre"  # the forward sink of the scraped daemon


def panels(items=None):
    for p in DASHBOARD["panels"] if items is None else items:
        yield p
        yield from panels(p.get("panels", []))


def expressions() -> list[tuple[str, str]]:
    """(where, PromQL) of every query: panel targets and the variables' queries."""
    out = [(p["title"], t["expr"]) for p in panels() for t in p.get("targets", [])]
    for v in DASHBOARD["templating"]["list"]:
        if v["type"] == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            out.append((f"variable {v['name']}", q))
    return out


def parse(expr: str) -> tuple[set[str], set[str]]:
    """PromQL -> (metric names, label names it filters or groups by). Raises on an unknown function."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    labels: set[str] = set()
    for body in re.findall(r"\{([^}]*)\}", text):  # matchers
        labels |= set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", body))
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range selectors ([$__rate_interval], [5m])
    for body in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", text):
        labels |= {x.strip() for x in body.split(",") if x.strip()}
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    if text.startswith("label_values("):  # a Grafana variable query: label_values(metric, label)
        metric, label = [x.strip() for x in text[len("label_values(") :].rstrip(") ").split(",")]
        return {metric}, {label}
    names = set()
    for m in re.finditer(r"\b([a-zA-Z_:][\w:]*)\b(\s*\()?", text):
        word, call = m.group(1), m.group(2)
        if call:
            assert word in FUNCTIONS, f"unknown PromQL function {word!r} in {expr}"
        elif word not in KEYWORDS and not re.fullmatch(r"\d\w*", word):
            names.add(word)
    return names, labels


def legend_labels(panel) -> set[str]:
    return {x for t in panel.get("targets", []) for x in re.findall(r"\{\{\s*(\w+)\s*\}\}", t.get("legendFormat", ""))}


# ------------------------------------------------------------------------------ the dashboard itself


def test_the_dashboard_is_importable_and_uses_the_datasource_variable():
    assert DASHBOARD["schemaVersion"] >= 36 and DASHBOARD["uid"] and DASHBOARD["title"]
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids)) > 30
    cells: dict[tuple[int, int], str] = {}
    for p in panels():
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"] and all(t["datasource"]["uid"] == "${datasource}" for t in p["targets"]), p["title"]
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):  # no two panels overlap
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps {cells.get((x, y))}"
                cells[(x, y)] = p["title"]
        for t in p["targets"]:
            assert 'instance=~"$instance"' in t["expr"], (p["title"], t["expr"])


def test_the_promql_reader():
    names, labels = parse(
        'histogram_quantile(0.99, sum by (le, service) (rate(rsu_x_bucket{instance=~"$i", '
        'reason="a{b}"}[$__rate_interval]))) / max(rsu_y) == 1'
    )
    assert names == {"rsu_x_bucket", "rsu_y"} and labels == {"le", "service", "instance", "reason"}
    with pytest.raises(AssertionError, match="unknown PromQL function 'rat'"):
        parse("rat(rsu_x[5m])")


# ------------------------------------------------------------------------------ against a running daemon


def exported(text: str) -> dict[str, str]:
    """Every series name /metrics can carry -> its family's type (counters: _total; histograms: _bucket,
    _sum, _count), including families declared without samples yet."""
    out: dict[str, str] = {}
    for m in re.finditer(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE):
        name, kind = m.groups()
        if kind == "counter":
            base = name.removesuffix("_total")
            out[base + "_total"] = kind
        elif kind == "histogram":
            for suffix in ("_bucket", "_sum", "_count"):
                out[name + suffix] = kind
        else:
            out[name] = kind
    return out


def label_names(state) -> dict[str, set[str]]:
    """Series name -> its label names, from the daemon's registry and the PKI client's collector (of a fresh
    client in ``state``: every family is declared, with or without samples)."""
    from rsu.clock import ManualClock
    from rsu.pki.client import ClientConfig, PkiClient
    from rsu.pki.keystore import FileKeyStore
    from rsu.pki.metrics import PkiCollector

    out: dict[str, set[str]] = {}
    for attr in vars(Metrics()).values():
        if hasattr(attr, "_labelnames") and hasattr(attr, "_name"):
            base, kind = attr._name, attr._type
            names = (
                [base + "_total"]
                if kind == "counter"
                else [base + s for s in ("_bucket", "_sum", "_count")]
                if kind == "histogram"
                else [base]
            )
            for n in names:
                out[n] = set(attr._labelnames) | ({"le"} if n.endswith("_bucket") else set())

    config = ClientConfig(
        its_id=b"x", cpoc_url="http://cpoc.test", tlm_ids=(bytes(8),), root_id=bytes(8), permissions=[]
    )
    client = PkiClient.load(config, FileKeyStore(state / "keys"), state / "state")  # a fresh client, as enrolled
    for f in PkiCollector(client, ManualClock()).collect():
        out[f.name + ("_total" if f.type == "counter" else "")] = set(f._labelnames)
    return out


@pytest.fixture(scope="module")
def scrape(tmp_path_factory):
    """/metrics of a real daemon with a PKI client section (its CPOC unreachable: the client's metrics are
    declared all the same), clock health on and a forward sink (a webhook nobody answers: its queue and age
    series are there from the start)."""
    tmp = tmp_path_factory.mktemp("grafana")
    group, port = group_and_port()
    pki = {
        "cpoc_url": "http://127.0.0.1:9",
        "tlm": "00000000000000a1",
        "root": "00000000000000b2",
        "its_id": "RSU-GRAFANA-TEST",
    }
    sink = {"type": "webhook", "name": SINK, "url": f"http://127.0.0.1:{free_tcp_port()}/centre"}
    daemon = RsuDaemon(
        tmp, group=group, port=port, extra={"pki": pki, "clock": {"poll_interval": 1}, "forward": {"sinks": [sink]}}
    )
    daemon.start()
    try:
        import urllib.request

        with urllib.request.urlopen(daemon.url + "/metrics", timeout=10) as resp:
            yield resp.read().decode()
    finally:
        assert daemon.stop() == 0


def test_every_metric_the_dashboard_queries_is_exported_by_a_running_daemon(scrape):
    have = exported(scrape)
    assert "rsu_pki_trust_list_age_seconds" in have and "rsu_clock_synchronized" in have  # the scrape is whole
    for series in ("rsu_forward_queued", "rsu_forward_oldest_age_seconds"):  # the sink's own series
        assert re.search(rf'^{series}{{sink="{SINK}"}} ', scrape, re.MULTILINE), series
    queried: set[str] = set()
    missing = []
    for where, expr in expressions():
        names, _ = parse(expr)
        queried |= names
        missing += [f"{where}: {n}" for n in sorted(names) if n not in have]
    assert not missing, "metrics the dashboard queries but the daemon does not export:\n" + "\n".join(missing)
    # every row of the issue is there: sends, lateness, drops, received by message, AT expiry, trust lists,
    # transport state, clock and GNSS
    for name in (
        "rsu_messages_sent_total",
        "rsu_scheduler_lateness_seconds_bucket",
        "rsu_messages_dropped_total",
        "rsu_messages_received_total",
        "rsu_at_expiry_hours",
        "rsu_pki_trust_list_age_seconds",
        "rsu_mqtt_connected",
        "rsu_clock_synchronized",
        "rsu_clock_offset_seconds",
        "rsu_gnss_fix_mode",
        "rsu_gnss_latitude_degrees",
        # forwarding to the centre, and the API's guard
        "rsu_forward_queued",
        "rsu_forward_delivered_total",
        "rsu_forward_dropped_total",
        "rsu_forward_oldest_age_seconds",
        "rsu_api_auth_failures_total",
        "rsu_api_requests_refused_total",
        "rsu_api_bans_total",
        "rsu_api_rate_limited_total",
    ):
        assert name in queried, name


def test_every_label_the_dashboard_uses_belongs_to_its_metrics(tmp_path):
    known = label_names(tmp_path)
    wrong = []
    for p in panels():
        for t in p.get("targets", []):
            names, labels = parse(t["expr"])
            allowed = set().union(*(known.get(n, set()) for n in names)) | TARGET_LABELS
            bad = (labels | legend_labels({"targets": [t]})) - allowed
            if bad:
                wrong.append(f"{p['title']}: {sorted(bad)} not labels of {sorted(names)}")
    assert not wrong, "\n".join(wrong)


def test_every_reason_the_dashboard_filters_on_exists():
    """The reason values in the dashboard's matchers are reasons the code defines (a renamed reason would
    leave a panel silently empty): drop reasons, the scheduler's skip reasons and the clock gate's."""
    from rsu.forward.runtime import DROP_REASONS as FORWARD_REASONS
    from rsu.health.clock import CLOCK_UNSYNCHRONIZED
    from rsu.ops.metrics import receive_reasons, send_reasons

    known = (
        set(receive_reasons())
        | set(send_reasons())
        | {"missed-slot", "overload", CLOCK_UNSYNCHRONIZED}
        | set(FORWARD_REASONS)
    )
    used = set()
    for _, expr in expressions():
        for op, value in re.findall(r'\breason\s*(=~|=)\s*"([^"]*)"', expr):
            used |= set(value.split("|")) if op == "=~" else {value}
    assert used and used <= known, sorted(used - known)
    # the outgoing-drops panel lists exactly the reasons only a send can have
    outgoing = next(t["expr"] for p in panels() if p["title"] == "Outgoing drops by reason" for t in p["targets"])
    listed = set(re.search(r'reason=~"([^"]*)"', outgoing).group(1).split("|"))
    assert listed == set(send_reasons()) - set(receive_reasons())


def test_the_forward_drops_panel_names_every_forward_drop_reason():
    """The panel groups by reason; its description tells the operator what each reason means: all of them."""
    from rsu.forward.runtime import DROP_REASONS

    panel = next(p for p in panels() if p["title"] == "Forward drops by sink and reason")
    assert "rsu_forward_dropped_total" in panel["targets"][0]["expr"]
    assert {"sink", "reason"} <= legend_labels(panel)
    missing = [r for r in DROP_REASONS if r not in panel["description"]]
    assert not missing, missing
