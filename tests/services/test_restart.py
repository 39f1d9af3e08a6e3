"""Store-and-repeat survives kill -9: a real subprocess applies requests, is SIGKILLed mid-work, the store reopens."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rsu.clock import SystemClock
from rsu.services.layer import ServiceLayer, ServicesConfig
from rsu.services.store import Store
from services.support import PROVIDER, STATION, new_ivim

WORKER = Path(__file__).with_name("store_worker.py")


def kill_worker_after(state_dir, n: int, durability: str = "power_cut") -> tuple[dict, list[dict]]:
    """Run store_worker.py on ``state_dir``, SIGKILL it after ``n`` acknowledgements: (ready line, acks)."""
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), str(state_dir), durability],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready = json.loads(proc.stdout.readline() or "{}")
        assert ready.get("ready"), proc.stderr.read()
        acks = []
        deadline = time.monotonic() + 20
        while len(acks) < n and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            acks.append(json.loads(line))
        os.kill(proc.pid, signal.SIGKILL)  # in the middle of its next request
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert len(acks) == n
    return ready, acks


@pytest.mark.parametrize("durability", ["power_cut", "process_crash"])
def test_kill_9_keeps_the_table_ids_and_revisions(state_dir, codec, durability):
    """Both store durabilities keep what was acknowledged through a kill -9 (process_crash gives up only
    the power cut)."""
    ready, acks = kill_worker_after(state_dir, 25, durability)

    store = Store(state_dir)
    assert store.integrity_check() == "ok"
    store.close()

    layer = ServiceLayer(
        ServicesConfig(state_dir, station_id=STATION, ivi_provider=PROVIDER), clock=SystemClock(), codec=codec
    )
    try:
        entries = {f"{e['service']}/{e['id']}": e for e in layer.list()}
        # everything active before the kill is there, with the same identifiers
        for key in ("gpc/default", "tlc/ssem-1201", f"ivi/{ready['kept_ivi']}", "rlt/1201"):
            assert key in entries, sorted(entries)
        assert entries["gpc/default"]["identification"] == ready["entries"]["gpc/default"]
        assert entries[f"ivi/{ready['kept_ivi']}"]["identification"] == ready["entries"][f"ivi/{ready['kept_ivi']}"]
        assert entries["gpc/default"]["dissemination"]["repetition_interval_s"] == 0.2
        # no MAPEM revision reset: the last acknowledged one, or the one committed just before the kill
        rev = entries["rlt/1201"]["identification"]["intersections"][0]["revision"]
        assert rev in (acks[-1]["mapem_revision"], (acks[-1]["mapem_revision"] + 1) % 128)
        # no IVI number reused: a new IVI gets a number beyond every one handed out
        n = layer.trigger("ivi", {"payload": new_ivim(validFrom=None, validTo=None)})["identification"][
            "iviIdentificationNumber"
        ]
        assert n > max(a["ivi_number"] for a in acks)
        active_numbers = {
            e["identification"]["iviIdentificationNumber"] for k, e in entries.items() if k.startswith("ivi/")
        }
        assert n not in active_numbers
        # and the resumed entries are sent again
        time.sleep(0.55)
        sent = {(t.service, t.id) for t in layer.due()}
        assert {("gpc", "default"), ("ivi", ready["kept_ivi"])} <= sent
    finally:
        layer.close()
