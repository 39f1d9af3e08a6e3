"""Helpers shared by the services tests (fixtures are in conftest.py)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from rsu import catalog

EXAMPLES = Path(__file__).resolve().parents[2] / "config" / "examples"
FILES = {
    "mapem": "mapem-4arm-intersection.json",
    "spatem": "spatem-4arm-intersection.json",
    "ivim": "ivim-speed-limit.json",
    "srem": "srem-bus-priority.json",
    "ssem": "ssem-bus-priority.json",
    "rtcmem": "rtcmem-corrections.json",
}
START = "2025-05-14T08:00:00Z"
STATION = 3120101
PROVIDER = {"countryCode": "FR", "providerIdentifier": 57}

_cache: dict[str, dict] = {}


def example(name: str) -> dict:
    """A fresh (deep) copy of a config/examples JER file."""
    if name not in _cache:
        _cache[name] = json.loads((EXAMPLES / FILES[name]).read_text())
    return copy.deepcopy(_cache[name])


def new_ivim(**mandatory) -> dict:
    """The example IVIM without the service-owned fields (id, status, timeStamp), plus ``mandatory`` changes."""
    v = example("ivim")
    m = v["ivi"]["mandatory"]
    for k in ("iviIdentificationNumber", "iviStatus", "timeStamp"):
        m.pop(k)
    m.update(mandatory)
    for k in [k for k, val in m.items() if val is None]:
        del m[k]
    return v


def decoded(codec, tx) -> dict:
    """The PDU value of a Transmission."""
    d = codec.decode(tx.pdu)
    assert d.kind is tx.kind
    return d.value


def by_service(txs, service: str) -> list:
    return [t for t in txs if t.service == service]


# --- a real permission check, as the security layer will provide one --------------------------------
# It derives the permissions a PDU needs from its content (the TS 103 301 SSP bits, by name) and
# answers the first one missing from ``granted``.


def needed_permissions(kind, value: dict) -> set[str]:
    need: set[str] = set()
    if kind is catalog.SPATEM:
        for ix in value["spat"]["intersections"]:
            need.add("intersectionState")
            if ix.get("regional"):
                need.add("prioritization")
            if ix.get("maneuverAssistList") or any(s.get("maneuverAssistList") for s in ix["states"]):
                need.add("maneuverAssist")
    elif kind is catalog.MAPEM:
        if value["map"].get("intersections"):
            need.add("intersections")
        if value["map"].get("roadSegments"):
            need.add("roadSegments")
    elif kind is catalog.IVIM:
        if value["ivi"]["mandatory"]["iviStatus"] == 3:
            need.add("negation")
        for c in value["ivi"].get("optional") or []:
            if c[0] in ("tc", "lac", "rcc"):
                need.add({"tc": "textContainer", "lac": "layoutContainer", "rcc": "roadConfiguration"}[c[0]])
            if c[0] == "giv":
                for part in c[1]:
                    if "laneStatus" in part:
                        need.add("laneStatus")
                    for rs in part.get("roadSignCodes") or []:
                        if rs["code"][0] == "iso14823":
                            cat = rs["code"][1]["pictogramCode"]["serviceCategoryCode"]
                            need.add(cat[1])  # regulatory, dangerWarning, ...
                        else:
                            need.add(rs["code"][0])  # viennaConvention, itisCodes, ...
    elif kind is catalog.SREM:
        t = value["srm"]["requestor"].get("type")
        if t and value["srm"].get("requests"):
            need.add(f"role:{t['role']}")
    return need


def permission_check(granted: set[str]):
    def check(kind, value):
        missing = sorted(needed_permissions(kind, value) - granted)
        return missing[0] if missing else None

    return check


ALL_PERMISSIONS = {
    "intersectionState",
    "prioritization",
    "maneuverAssist",
    "intersections",
    "roadSegments",
    "negation",
    "textContainer",
    "layoutContainer",
    "roadConfiguration",
    "regulatory",
    "dangerWarning",
    "informative",
    "laneStatus",
    "itisCodes",
    "role:publicTransport",
    "role:emergency",
}


def run_cli(*args: str, timeout: float = 60, env: dict | None = None):
    """Run the ``rsu`` CLI in a real subprocess (``python -m rsu``)."""
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, **(env or {})}
    env["PYTHONPATH"] = str(repo) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "rsu", *args], capture_output=True, text=True, cwd=repo, env=env, timeout=timeout
    )
