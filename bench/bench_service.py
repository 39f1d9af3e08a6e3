"""Service path cost: an application's request -> signed GeoNetworking frame, against one ECDSA sign.

    python bench/bench_service.py [--repeat N] [--profile spatem|mapem|ivim]

Each figure is the whole path the daemon runs for one new message content: the request
(JER JSON, as the HTTP API or a controller feed hands it over) through the ServiceLayer
(intake, validation, service rules, UPER encode, store commit), ``due()`` and the send
pipeline (GN/BTP headers, 1609.2 signature with a real AT over a real PKI, secured GN
transport). Every request changes the content so that nothing is answered from a cache:

* SPATEM: ``update`` of the 4-arm example's state (the service fills the timestamps);
  the clock moves 0.1 s per request (the 10 Hz rate limit);
* SPATEM through the controller feed: the same state as a JSON feed datagram (``docs/integrations.md``;
  its times offsets from the message time, so every state is new) through ControllerFeed, whose validated
  update reaches TLM as a Python value (the daemon's path under ``bench_load.py``);
* MAPEM: ``update`` of the 4-arm example (16 lanes) alternating between two lane widths
  (a new revision and a store commit each time);
* IVIM: ``update`` of the speed-limit example alternating between two speeds.

Prints a Markdown table: wall-clock µs and CPU µs (process time: without the waits of the store's
fsync), each the fastest of ``--repeat`` samples (the machine is shared: the fastest sample is the
least disturbed one), and their ratios to one bare ECDSA P-256 sign measured the same way in the
same run. ``--profile KIND`` prints a cProfile of that path instead. ``--store-durability process_crash``
measures the cheaper store mode (no fsync per commit; see docs/services.md "Store").
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, utils  # noqa: E402


from _timing import fastest_us  # noqa: E402

from rsu.clock import ManualClock  # noqa: E402
from rsu.codec.facilities import get_codec  # noqa: E402
from rsu.pipeline.send import GnFramer, SendPipeline  # noqa: E402
from rsu.security import ssp  # noqa: E402
from rsu.security.pki import init_pki  # noqa: E402
from rsu.security.pool import AtPool  # noqa: E402
from rsu.security.service import SecurityService  # noqa: E402
from rsu.security.setup import permission_check  # noqa: E402
from rsu.security.verify import TrustStore, Verifier  # noqa: E402
from rsu.services.layer import ServiceLayer, ServicesConfig  # noqa: E402
from rsu.services.store import DURABILITY  # noqa: E402
from rsu.transports.config import GnUdpConfig  # noqa: E402
from rsu.transports.gn_core import GnCore  # noqa: E402

INNER = 20
FEED_DATAGRAMS = 8000  # 0.1 s apart: enough for --repeat 150 of every path
PROVIDER = {"countryCode": "FR", "providerIdentifier": 57}


def example(name: str) -> dict:
    obj: dict = json.loads((REPO / "config/examples" / f"{name}.json").read_text())
    return obj


class Rig:
    """A secured station: ServiceLayer (real store) -> SendPipeline -> secured GN framer."""

    def __init__(self, state_dir: str, store_durability: str = "power_cut") -> None:
        self.clock = ManualClock(time.time())
        init_pki(str(Path(state_dir) / "pki"), now=self.clock.now(), provider=ssp.ServiceProvider.of("FR", 57))
        trust = TrustStore.from_directory(str(Path(state_dir) / "pki"))
        self.security = SecurityService(AtPool.load_directory(Path(state_dir) / "pki" / "at", self.clock),
                                        Verifier(self.clock, trust), self.clock)
        codec = get_codec()
        self.layer = ServiceLayer(ServicesConfig(Path(state_dir) / "state", station_id=3120101,
                                                 ivi_provider=PROVIDER, store_durability=store_durability),
                                  clock=self.clock, codec=codec, permission_check=permission_check(self.security))
        core = GnCore(GnUdpConfig(latitude=44.8376, longitude=-0.5794), self.clock)
        self.pipeline = SendPipeline([GnFramer(core)], [core.name], self.security)
        self.frames = 0

    def send_due(self) -> None:
        now = self.clock.now()
        for tx in self.layer.due(now):
            for out in self.pipeline.send(tx, now):
                assert out.frame, out
                self.frames += 1


def spatem_path(rig: Rig):
    payload = example("spatem-4arm-intersection")
    for ix in payload["spat"]["intersections"]:
        ix.pop("revision", None)  # taken from the active MAPEM (whose revision the MAPEM path moves)
    first = rig.layer.trigger("tlm", {"payload": payload})
    ident = first["id"]
    rig.send_due()

    def run() -> None:
        rig.clock.advance(0.1)
        rig.layer.update("tlm", ident, {"payload": payload})
        rig.send_due()
    return run


def feed_template(spatem: dict) -> str:
    """The example SPATEM's state as a JSON controller-feed message (``docs/integrations.md``), its times as
    %-placeholders of offsets from the message time (filled per run: every state is new)."""
    ix = spatem["spat"]["intersections"][0]
    names = {"startTime": "start_time", "minEndTime": "min_end_time", "maxEndTime": "max_end_time",
             "likelyTime": "likely_time", "nextTime": "next_time"}
    groups = []
    for st in ix["states"]:
        events = []
        for ev in st["state-time-speed"]:
            e: dict = {"state": ev["eventState"]}
            for k, v in (ev.get("timing") or {}).items():
                # a time 0.1..60 s after the message (the example's TimeMarks lie in one hour)
                e[k if k == "confidence" else names[k]] = v if k == "confidence" else f"@{1 + v % 600}@"
            events.append(e)
        groups.append({"signal_group": st["signalGroup"], **events[0], **({"next": events[1:]} if events[1:] else {})})
    message = {"intersection": ix["id"]["id"], "timestamp": "@0@", "status": ix["status"], "name": ix["name"],
               "signal_groups": groups}
    text = json.dumps(message).replace("%", "%%")
    for tenths in sorted({int(x) for x in text.split("@")[1::2]}, reverse=True):
        text = text.replace(f'"@{tenths}@"', f"%(t{tenths})f")
    return text


def feed_path(rig: Rig):
    """A JSON controller-feed datagram of the 4-arm state (as bench_load's feeder sends, here with the example's
    48 events) through ControllerFeed -> TLM -> signed GN frame."""
    from rsu.integrations.config import ControllerFeedConfig
    from rsu.integrations.controller import ControllerFeed

    feed = ControllerFeed(ControllerFeedConfig.from_dict({"port": None}), rig.layer, clock=rig.clock)
    template = feed_template(example("spatem-4arm-intersection"))
    offsets = [int(part.split(")")[0][1:]) for part in template.split("%(")[1:]]
    start = rig.clock.now()
    # made beforehand (the feeder's work, not the daemon's): datagram k is stamped start + 0.1 k (the other
    # paths move the clock too, by 0.1 s or less per run)
    datagrams = [(template % {f"t{o}": start + k / 10 + o / 10 for o in offsets}).encode()
                 for k in range(FEED_DATAGRAMS)]

    def run() -> None:
        rig.clock.advance(0.1)
        result = feed.on_datagram(datagrams[round((rig.clock.now() - start) * 10)], ("127.0.0.1", 1))
        assert result.accepted, result
        rig.send_due()
    run()
    return run


def alternating(rig: Rig, service: str, a: dict, b: dict):
    """Trigger ``a``, then each run updates the entry with ``b`` and ``a`` in turn (the content changes)."""
    ident = rig.layer.trigger(service, {"payload": a})["id"]
    rig.send_due()
    state = {"n": 0}

    def run() -> None:
        state["n"] += 1
        rig.clock.advance(0.001)
        r = rig.layer.update(service, ident, {"payload": b if state["n"] % 2 else a})
        assert not r.get("unchanged"), r
        rig.send_due()
    return run


def mapem_path(rig: Rig):
    a = example("mapem-4arm-intersection")
    b = copy.deepcopy(a)
    b["map"]["intersections"][0]["laneWidth"] += 1
    for p in (a, b):
        for ix in p["map"]["intersections"]:
            ix.pop("revision", None)
        p["map"].pop("msgIssueRevision", None)
    return alternating(rig, "rlt", a, b)


def ivim_path(rig: Rig):
    a = example("ivim-speed-limit")
    a["ivi"]["mandatory"].pop("iviStatus", None)
    a["ivi"]["mandatory"].pop("iviIdentificationNumber", None)
    b = copy.deepcopy(a)
    _bump_speed(b)
    return alternating(rig, "ivi", a, b)


def _bump_speed(ivim: dict) -> None:
    """Change one number in the IVIM's first GIC part (so the content differs)."""
    def walk(o) -> bool:
        if isinstance(o, dict):
            for k, v in o.items():
                if k in ("speedValue", "unit", "value") and isinstance(v, int):
                    o[k] = v + 1 if v < 100 else v - 1
                    return True
                if walk(v):
                    return True
        elif isinstance(o, list):
            return any(walk(x) for x in o)
        return False
    assert walk(ivim["ivi"]["optional"]), "no number to change in the IVIM example"


PATHS = {"spatem": spatem_path, "feed": feed_path, "mapem": mapem_path, "ivim": ivim_path}
GOALS = {"spatem": 4, "feed": 4, "mapem": 8, "ivim": 4}
NAMES = {"spatem": "SPATEM 4-arm: update -> signed GN frame",
         "feed": "SPATEM 4-arm: controller-feed datagram -> signed GN frame",
         "mapem": "MAPEM 16 lanes: update -> signed GN frame",
         "ivim": "IVIM speed limit: update -> signed GN frame"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--profile", choices=sorted(PATHS))
    ap.add_argument("--json", help="also write the figures to this file (bench/run.py reads it)")
    ap.add_argument("--store-durability", choices=sorted(DURABILITY), default="power_cut",
                    help="services.store_durability of the rig's store (default power_cut, the daemon's default)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        rig = Rig(d, args.store_durability)
        runs = {name: PATHS[name](rig) for name in ("mapem", "spatem", "feed", "ivim")}
        if args.profile:
            run = runs[args.profile]
            for _ in range(50):
                run()
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(500):
                run()
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(30)
            pstats.Stats(prof).sort_stats("cumulative").print_stats(45)
            rig.layer.close()
            return 0
        key = ec.generate_private_key(ec.SECP256R1())
        digest = bytes(32)
        sign_w, sign_c = fastest_us(lambda: key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256()))),
                                    args.repeat, 50)
        rows = [(NAMES[name], *fastest_us(run, args.repeat, INNER), GOALS[name]) for name, run in runs.items()]
        rig.layer.close()
    print("| path | wall µs | × sign | CPU µs | × sign | goal |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| ECDSA P-256 sign (cryptography, prehashed) | {sign_w:.0f} | 1.0 | {sign_c:.0f} | 1.0 | |")
    for name, w, c, goal in rows:
        print(f"| {name} | {w:.0f} | {w / sign_w:.1f} | {c:.0f} | {c / sign_c:.1f} | ≤ {goal} |")
    if args.json:
        figures = {"sign_us": {"wall": sign_w, "cpu": sign_c},
                   "paths": {key: {"wall_us": w, "cpu_us": c, "goal_x_sign": goal}
                             for key, (_, w, c, goal) in zip(runs, rows)}}
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
