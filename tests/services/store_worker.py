"""A daemon stand-in for the kill -9 test: opens the store, applies requests, acknowledges each on stdout.

Usage: ``python tests/services/store_worker.py STATE_DIR [power_cut|process_crash]`` (the store's durability). Every line printed is a JSON object
written *after* the request it reports was committed (so whatever it acknowledged must survive).
It never stops by itself: the test kills it with SIGKILL in the middle of its work.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path[:0] = [str(HERE.parents[2]), str(HERE.parents[1])]

from rsu.clock import SystemClock  # noqa: E402
from rsu.services.layer import ServiceLayer, ServicesConfig  # noqa: E402
from services.support import PROVIDER, STATION, example, new_ivim  # noqa: E402


def say(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(state_dir: str, durability: str) -> None:
    layer = ServiceLayer(
        ServicesConfig(state_dir, station_id=STATION, ivi_provider=PROVIDER, store_durability=durability),
        clock=SystemClock(),
    )
    layer.trigger("rlt", {"payload": example("mapem")})
    layer.trigger("gpc", {"payload": example("rtcmem"), "dissemination": {"repetition_interval_s": 0.2}})
    layer.trigger("tlc", {"payload": example("ssem")})
    kept = layer.trigger(
        "ivi", {"payload": new_ivim(validFrom=None, validTo=None), "dissemination": {"repetition_interval_s": 0.5}}
    )
    say(
        {
            "ready": True,
            "entries": {f"{e['service']}/{e['id']}": e["identification"] for e in layer.list()},
            "kept_ivi": kept["id"],
        }
    )
    n = 0
    while True:
        n += 1
        v = example("mapem")
        v["map"]["intersections"][0]["laneSet"][0]["nodeList"]["nodes"][0]["delta"]["node-XY3"]["x"] += n
        rev = layer.update("rlt", "1201", {"payload": v})["identification"]["intersections"][0]["revision"]
        ivi = layer.trigger("ivi", {"payload": new_ivim(validFrom=None, validTo=None)})
        if n % 2:
            layer.terminate("ivi", ivi["id"], {"mode": "stop"})
        layer.due()
        say({"ack": n, "mapem_revision": rev, "ivi_number": ivi["identification"]["iviIdentificationNumber"]})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "power_cut")
