"""Time back on air after kill -9: 50 MAPEM + 10 IVIM active, the daemon SIGKILLed and started again.

    python bench/bench_restart.py [--runs N] [--mapem 50] [--ivim 10] [--cold-runs N]

A real ``rsu run`` subprocess (its own state directory, free API port, a random multicast group
239.x.y.z and a free UDP port; security on, with its local test PKI) gets the messages through
the API; a multicast receiver on loopback records the arrival time of every frame. Each run
kills the daemon with SIGKILL, starts it again, and measures, from the moment the new process
is spawned:

* ``api``: until /v1/health answers;
* ``all_on_air``: until every one of the active messages has been seen on the air again
  (MAPEMs told apart by intersection id, IVIMs by iviIdentificationNumber);
* ``first_on_air``: until the first of them is;
* the daemon's CPU time (user + system, from /proc) when the last of them arrived: on a busy
  machine the wall times grow with the load, this one does not.

The rsu package is byte-compiled first (as pip does when it installs rsu), so module compilation
is not counted.

Figures are medians over the runs, in seconds, and as multiples of one ECDSA P-256 signature
measured in the same run (so machines compare). The target is all_on_air <= 1.0 s.

Then the cold start (issue 13: <= 0.5 s with a warm cache), :func:`cold_start`, which other bench
scripts import: ``rsu run`` spawned with a minimal configuration (one GN/UDP transport, security on
with its local test PKI, one MAP file), the compiled ASN.1 cache already written and the modules
byte-compiled; from the spawn until /v1/health answers (``api``) and until the MAP file's MAPEM is on
the air (``first_on_air``). ``fresh``: a new state directory each run (the local test PKI and the
store are created); ``restart``: the same state directory again after a clean stop.
"""

from __future__ import annotations

import argparse
import compileall
import copy
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _timing import median_us  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from rsu.codec.facilities import get_codec  # noqa: E402
from rsu.dissect import dissect  # noqa: E402
from tests.ops.daemonproc import MulticastReceiver, RsuDaemon, example, group_and_port  # noqa: E402


def mapems(n: int) -> list[dict]:
    base = example("mapem-4arm-intersection.json")
    out = []
    for i in range(n):
        v = copy.deepcopy(base)
        v["map"]["intersections"][0]["id"]["id"] = 2000 + i
        out.append(v)
    return out


def ivims(n: int) -> list[dict]:
    base = example("ivim-speed-limit.json")
    m = base["ivi"]["mandatory"]
    for k in ("iviIdentificationNumber", "iviStatus", "timeStamp", "validFrom", "validTo"):
        m.pop(k, None)
    return [copy.deepcopy(base) for _ in range(n)]


class Recorder(threading.Thread):
    """Receives every frame of the group with its arrival time (monotonic), in a thread."""

    def __init__(self, group: str, port: int, pid=lambda: None):
        super().__init__(daemon=True)
        self.pid = pid  # the daemon's process id now (None: none running)
        self.rx = MulticastReceiver(group, port)
        self.rx.sock.settimeout(0.2)
        self.frames: list[tuple[float, bytes, float | None]] = []  # (arrival, frame, daemon CPU s)
        self.lock = threading.Lock()
        self.running = True

    def run(self) -> None:
        while self.running:
            try:
                data, _ = self.rx.sock.recvfrom(65535)
            except OSError:
                continue
            at = time.monotonic()
            with self.lock:
                self.frames.append((at, data, cpu_seconds(self.pid())))

    def since(self, t0: float) -> list[tuple[float, bytes, float | None]]:
        with self.lock:
            return [f for f in self.frames if f[0] >= t0]

    def stop(self) -> None:
        self.running = False
        self.join(2)
        self.rx.close()


def cpu_seconds(pid: int | None) -> float | None:
    """CPU time (user + system) the process has used so far, from /proc (None when unknown)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def key_of(frame: bytes, codec) -> str | None:
    """``mapem:2003`` / ``ivim:17`` for a frame on the air (None: not one of ours)."""
    try:
        layers = dissect(frame)
    except Exception:  # noqa: BLE001 - a frame we cannot read is not one of ours
        return None
    for layer in layers:
        if layer.name == "facilities":
            pdu = layer.fields.get("pdu") or {}
            if "map" in pdu:
                return f"mapem:{pdu['map']['intersections'][0]['id']['id']}"
            if "ivi" in pdu:
                return f"ivim:{pdu['ivi']['mandatory']['iviIdentificationNumber']}"
    return None


def first_seen(
    rec: Recorder, t0: float, wanted: set[str], codec, timeout: float = 20.0
) -> dict[str, tuple[float, float | None]]:
    """Arrival time (after ``t0``) and the daemon's CPU time then, for the first frame of every wanted message. Frames are read only once
    at least as many have arrived as there are messages, so the bench does not take CPU from the daemon
    while it starts (the arrival times are taken by the receiving thread)."""
    seen: dict[str, tuple[float, float | None]] = {}
    checked = 0
    deadline = time.monotonic() + timeout
    while set(seen) != wanted:
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"only {len(seen)} of {len(wanted)} back on air within {timeout} s; missing "
                f"{sorted(wanted - set(seen))[:5]}"
            )
        frames = rec.since(t0)
        if len(frames) - checked < len(wanted) - len(seen):
            time.sleep(0.05)
            continue
        for at, data, cpu in frames[checked:]:
            k = key_of(data, codec)
            if k in wanted and k not in seen:
                seen[k] = (at - t0, cpu)
        checked = len(frames)
    return seen


def cold_start(runs: int = 5, poll_s: float = 0.005) -> dict[str, float | int]:
    """Spawn-to-ready times of ``rsu run`` with a minimal configuration (see the module docstring):
    medians over ``runs`` of ``fresh_api_s``, ``fresh_first_on_air_s`` (a new state directory each
    run) and ``restart_api_s``, ``restart_first_on_air_s`` (the same one after a clean stop), and the
    daemon's CPU time (user + system) when /v1/health answered, ``*_cpu_until_api_s`` (other load on the
    machine changes it much less than the wall times)."""
    import urllib.request

    compileall.compile_dir(str(REPO / "rsu"), quiet=1)
    from rsu.codec.asn1files import compile_set

    for name, codec_name in (("is", "uper"), ("security", "oer")):  # the warm cache of the definition
        assert compile_set(name, codec_name).spec is not None  # writes the cache files when missing
    codec = None
    group, port = group_and_port()
    figures: dict[str, list[float]] = {
        f"{phase}_{what}": [] for phase in ("fresh", "restart") for what in ("api", "air", "cpu")
    }
    with tempfile.TemporaryDirectory(prefix="rsu-bench-cold-") as tmp:
        map_file = Path(tmp) / "map.json"
        mapem = example("mapem-4arm-intersection.json")
        map_file.write_text(json.dumps(mapem))
        ident = mapem["map"]["intersections"][0]["id"]["id"]
        wanted = {f"mapem:{ident}"}
        rec = Recorder(group, port)
        rec.start()
        try:
            for i in range(runs):
                extra = {
                    "logging": {"level": "WARNING"},
                    "integrations": {"map_files": {"intersections": {str(ident): str(map_file)}}},
                }
                d = RsuDaemon(Path(tmp) / f"run{i}", group=group, port=port, extra=extra)
                for phase in ("fresh", "restart"):
                    d.write_config()
                    t0 = time.monotonic()
                    d.start(poll_s=poll_s)
                    figures[f"{phase}_api"].append(time.monotonic() - t0)
                    figures[f"{phase}_cpu"].append(cpu_seconds(d.proc.pid if d.proc else None) or 0.0)
                    figures[f"{phase}_air"].append(first_seen(rec, t0, wanted, codec)[min(wanted)][0])
                    with urllib.request.urlopen(d.url + "/v1/health", timeout=10):
                        pass
                    d.stop()
        finally:
            rec.stop()
    out: dict[str, float | int] = {"runs": runs}
    for phase in ("fresh", "restart"):
        out[f"{phase}_api_s"] = round(statistics.median(figures[f"{phase}_api"]), 3)
        out[f"{phase}_first_on_air_s"] = round(statistics.median(figures[f"{phase}_air"]), 3)
        out[f"{phase}_cpu_until_api_s"] = round(statistics.median(figures[f"{phase}_cpu"]), 3)
    return out


def sign_us() -> float:
    key = ec.generate_private_key(ec.SECP256R1())
    return median_us(lambda: key.sign(b"x" * 100, ec.ECDSA(hashes.SHA256())), repeat=30, inner=20)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--mapem", type=int, default=50)
    ap.add_argument("--ivim", type=int, default=10)
    ap.add_argument("--cold-runs", type=int, default=5, help="runs of the cold start (0: none)")
    ap.add_argument("--cold-only", action="store_true", help="only the cold start")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()
    if args.cold_only:
        print(json.dumps(cold_start(args.cold_runs)))
        return 0
    codec = get_codec()
    # an installed rsu has its bytecode compiled (pip does it); a source tree run with
    # PYTHONDONTWRITEBYTECODE would compile every module at every start instead
    compileall.compile_dir(str(REPO / "rsu"), quiet=1)
    group, port = group_and_port()
    with tempfile.TemporaryDirectory(prefix="rsu-bench-restart-") as tmp:
        d = RsuDaemon(Path(tmp), group=group, port=port, extra={"logging": {"level": "WARNING"}})
        rec = Recorder(group, port, pid=lambda: d.proc.pid if d.proc is not None else None)
        rec.start()
        try:
            d.start()
            wanted = set()
            for v in mapems(args.mapem):
                d.trigger("rlt", v)
                wanted.add(f"mapem:{v['map']['intersections'][0]['id']['id']}")
            for v in ivims(args.ivim):
                a = d.trigger("ivi", v)
                wanted.add(f"ivim:{a['identification']['iviIdentificationNumber']}")
            first_seen(rec, 0.0, wanted, codec)  # all on the air before the first kill
            api, on_air, first, cpu = [], [], [], []
            for _ in range(args.runs):
                d.kill9()
                t0 = time.monotonic()
                d.start()
                api.append(time.monotonic() - t0)
                seen = first_seen(rec, t0, wanted, codec)
                last = max(seen.values(), key=lambda x: x[0])
                on_air.append(last[0])
                first.append(min(x[0] for x in seen.values()))
                if last[1] is not None:
                    cpu.append(last[1])
                time.sleep(0.3)
        finally:
            if d.proc is not None:
                d.stop()
            rec.stop()
    sig = sign_us() / 1e6
    result = {
        "messages": {"mapem": args.mapem, "ivim": args.ivim},
        "runs": args.runs,
        "api_s": round(statistics.median(api), 3),
        "first_on_air_s": round(statistics.median(first), 3),
        "all_on_air_s": round(statistics.median(on_air), 3),
        "all_on_air_max_s": round(max(on_air), 3),
        "daemon_cpu_until_all_on_air_s": round(statistics.median(cpu), 3) if cpu else None,
        "ecdsa_sign_s": round(sig, 6),
        "all_on_air_in_signatures": round(statistics.median(on_air) / sig),
        "each_run_all_on_air_s": [round(x, 3) for x in on_air],
    }
    if args.cold_runs:
        result["cold_start"] = cold_start(args.cold_runs)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"kill -9 with {args.mapem} MAPEM + {args.ivim} IVIM active, {args.runs} runs (median):")
        print(f"  API answering        {result['api_s']:.3f} s")
        print(f"  first on the air     {result['first_on_air_s']:.3f} s")
        print(
            f"  all back on the air  {result['all_on_air_s']:.3f} s (max {result['all_on_air_max_s']:.3f} s; "
            f"{result['all_on_air_in_signatures']} x one ECDSA sign of {sig * 1e6:.0f} us)"
        )
        if cpu:
            print(
                f"  daemon CPU time until all on air {result['daemon_cpu_until_all_on_air_s']:.3f} s "
                "(what the wall time would be on an idle machine, disk waits aside)"
            )
        print(f"  runs: {', '.join(f'{x:.3f}' for x in on_air)}")
        cold = result.get("cold_start")
        if cold:
            print(f"cold start, minimal configuration with one MAP file, warm cache, {cold['runs']} runs (median):")
            for phase, what in (("fresh", "new state directory"), ("restart", "same state after a clean stop")):
                print(
                    f"  {what:<30} API answering {cold[f'{phase}_api_s']:.3f} s, "
                    f"first on the air {cold[f'{phase}_first_on_air_s']:.3f} s, "
                    f"daemon CPU until API {cold[f'{phase}_cpu_until_api_s']:.3f} s"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
