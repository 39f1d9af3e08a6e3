"""docs/metrics.md lists every metric of the registry, every receive and send drop reason the code
defines, and every limit; nothing more. A metric or reason added without its line fails here."""

from __future__ import annotations

import re

from rsu.limits import LIMITS
from rsu.ops.metrics import Metrics, receive_reasons, send_reasons
from tests.conftest import REPO

DOC = (REPO / "docs" / "metrics.md").read_text()


def table(heading: str) -> dict[str, list[str]]:
    """The rows of the table under ``## heading``: first cell (without backticks) -> the other cells."""
    section = DOC.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        m = re.match(r"^\| `([^`]+)` \|(.*)\|$", line)
        if m:
            rows[m.group(1)] = [c.strip() for c in m.group(2).split("|")]
    return rows


def registry() -> dict[str, tuple[str, list[str]]]:
    """Exposition name -> (type, label names) of every metric the daemon registers."""
    m = Metrics()
    out = {}
    for attr in vars(m).values():  # the metric objects: label names even of series not created yet
        if hasattr(attr, "_labelnames") and hasattr(attr, "_name"):
            name = attr._name + ("_total" if attr._type == "counter" else "")
            out[name] = (attr._type, sorted(attr._labelnames))
    families = {f.name + ("_total" if f.type == "counter" else "") for f in m.registry.collect()}
    assert families == set(out), "every registered metric is an attribute of Metrics"
    return out


def test_every_metric_is_documented_with_its_type_and_labels():
    doc = table("Metrics")
    code = registry()
    assert set(doc) == set(code)
    for name, (kind, labels) in code.items():
        cells = doc[name]
        assert cells[0] == kind, name
        assert sorted(x.strip() for x in cells[1].split(",") if x.strip()) == labels, name


def test_every_pki_client_metric_is_documented_with_its_type_and_labels(tmp_path):
    """The PKI client's collector (registered by the daemon when pki: is configured), from a fresh client."""
    from rsu.clock import ManualClock
    from rsu.pki.client import ClientConfig, PkiClient
    from rsu.pki.keystore import FileKeyStore
    from rsu.pki.metrics import PkiCollector

    config = ClientConfig(
        its_id=b"x", cpoc_url="http://cpoc.test", tlm_ids=(bytes(8),), root_id=bytes(8), permissions=[]
    )
    client = PkiClient.load(config, FileKeyStore(tmp_path / "keys"), tmp_path / "state")
    code = {
        f.name + ("_total" if f.type == "counter" else ""): (f.type, sorted(f._labelnames))
        for f in PkiCollector(client, ManualClock()).collect()
    }
    doc = table("PKI client metrics")
    assert set(doc) == set(code)
    for name, (kind, labels) in code.items():
        assert doc[name][0] == kind, name
        assert sorted(x.strip() for x in doc[name][1].split(",") if x.strip()) == labels, name


def test_every_receive_and_send_reason_is_documented_where_it_is_decided():
    assert {r: cells[0] for r, cells in table("Receive drop reasons").items()} == receive_reasons()
    assert {r: cells[0] for r, cells in table("Send drop reasons").items()} == send_reasons()


def test_every_limit_is_documented_with_its_setting():
    doc = table("Limits")
    assert set(doc) == set(LIMITS)
    for name, (setting, _) in LIMITS.items():
        assert doc[name][0].startswith(f"`{setting}`"), name
