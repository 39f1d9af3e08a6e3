"""Every issue-13 figure in one run, as one table with its ratio to one ECDSA sign or verify.

    python bench/run.py [--quick] [--only service,uper,pipeline,restart,load,workers]
                        [--json FILE] [--update-readme]

Runs the bench scripts one after the other, each in its own process (so one's heap or caches do not
help or hurt the next), each measuring one bare ECDSA P-256 sign (and verify) side by side with its
own figures; reads their JSON and prints one Markdown table: what, measured, the ratio to one
sign/verify of the same run, the goal, and whether it is met. ``--update-readme`` writes that table
into the README between the ``bench:begin`` / ``bench:end`` markers.

The daemon figures (one core, overload, workers, cold start) come from real ``rsu run`` processes;
on a machine shared with other work they follow the CPU the daemon gets: each row says how it was
taken. A full run takes about 2–3 minutes on 2 quiet cores (longer on a busy machine); ``--quick`` less.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
README = REPO / "README.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
SECTIONS = ("service", "uper", "pipeline", "restart", "load", "workers")
ISSUE_SIGN_US = 21.5  # one sign on the machine where issue 13 set its goals in µs
ONE_CORE_N = 500  # the issue's goal: 500 intersections on one core


@dataclass
class Row:
    what: str
    measured: str
    ratio: str
    goal: str
    met: bool | None  # None: no goal (context figure)
    source: str


def _run(script: str, *args: str, out: Path | None = None) -> dict:
    """Run ``bench/<script>`` with ``--json`` and return what it wrote (a file, or stdout for bench_restart)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    cmd = [sys.executable, str(BENCH / script), *args]
    t0 = time.monotonic()
    print(f"# {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
    if out is None:
        done = subprocess.run(cmd, cwd=REPO, env=env, check=True, stdout=subprocess.PIPE, text=True)
        result: dict = json.loads(done.stdout)
    else:
        subprocess.run(cmd + ["--json", str(out)], cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
        result = json.loads(out.read_text())
    print(f"#   {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
    return result


def _x(value: float, unit: float) -> str:
    return f"{value / unit:.1f}×"


def service_rows(tmp: Path, quick: bool) -> list[Row]:
    r = _run("bench_service.py", "--repeat", "10" if quick else "30", out=tmp / "service.json")
    sign = r["sign_us"]
    rows = [
        Row(
            "one ECDSA P-256 sign (the unit of the next rows)",
            f"{sign['wall']:.1f} µs",
            "1.0× sign",
            "",
            None,
            "bench_service.py",
        )
    ]
    names = {
        "spatem": "SPATEM 4-arm: API update (JSON) → signed GN frame",
        "feed": "SPATEM 4-arm: controller-feed datagram → signed GN frame (the daemon's 10 Hz path)",
        "mapem": "MAPEM 16 lanes: update → signed GN frame (a store commit that survives a power cut)",
        "ivim": "IVIM speed limit: update → signed GN frame (a store commit that survives a power cut)",
    }
    crash = _run(
        "bench_service.py",
        "--repeat",
        "10" if quick else "30",
        "--store-durability",
        "process_crash",
        out=tmp / "service-crash.json",
    )
    for key, run, name in [(k, r, names[k]) for k in ("spatem", "feed", "mapem", "ivim")] + [
        (k, crash, f"{k.upper()}, `store_durability: process_crash` (survives kill -9, not a power cut)")
        for k in ("mapem", "ivim")
    ]:
        p, unit = run["paths"][key], run["sign_us"]
        ratio = p["wall_us"] / unit["wall"]
        rows.append(
            Row(
                name,
                f"{p['wall_us']:.0f} µs (CPU {p['cpu_us']:.0f})",
                f"{ratio:.1f}× sign (CPU {_x(p['cpu_us'], unit['cpu'])})",
                f"≤ {p['goal_x_sign']}×",
                ratio <= p["goal_x_sign"],
                "bench_service.py",
            )
        )
    return rows


def uper_rows(tmp: Path, quick: bool) -> list[Row]:
    r = _run("bench_uper.py", "--repeat", "10" if quick else "30", out=tmp / "uper.json")
    sign, s = r["sign_us"], r["examples"]["spatem-4arm-intersection"]
    rows = []
    for what, key, goal_us in (("encode", "encode_generated_us", 25), ("decode", "decode_generated_us", 30)):
        # the issue's goals are µs on the machine where one sign took ISSUE_SIGN_US: judged as that ratio
        goal = goal_us / ISSUE_SIGN_US
        rows.append(
            Row(
                f"UPER {what} of a SPATEM (4-arm, generated codec, pure Python)",
                f"{s[key]:.1f} µs",
                _x(s[key], sign) + " sign",
                f"≤ {goal_us} µs = {goal:.2f}× sign",
                s[key] / sign <= goal,
                "bench_uper.py",
            )
        )
    return rows


def pipeline_rows(tmp: Path, quick: bool) -> list[Row]:
    r = _run("bench_pipeline.py", "--repeat", "10" if quick else "30", out=tmp / "pipeline.json")
    us, sign, verify = r["us"], r["sign_us"], r["verify_us"]
    rows = [
        Row(
            "send path: UPER encode + GN/BTP build + 1609.2 sign (SPATEM)",
            f"{us['send_path']:.0f} µs",
            _x(us["send_path"], sign) + " sign",
            "",
            None,
            "bench_pipeline.py",
        ),
        Row(
            "one ECDSA P-256 verify (the unit of the next rows)",
            f"{verify:.1f} µs",
            "1.0× verify",
            "",
            None,
            "bench_pipeline.py",
        ),
    ]
    for key, form in (("srem_receive_digest", "digest"), ("srem_receive_certificate", "certificate")):
        ratio = us[key] / verify
        rows.append(
            Row(
                f"SREM receive: GN parse + verify + decode + SSP check ({form} signer)",
                f"{us[key]:.0f} µs",
                f"{ratio:.2f}× verify",
                "≤ 2×",
                ratio <= 2.0,
                "bench_pipeline.py",
            )
        )
    return rows


def restart_rows(tmp: Path, quick: bool) -> list[Row]:
    r = _run("bench_restart.py", "--json", "--runs", "3" if quick else "5", "--cold-runs", "3" if quick else "7")
    cold, rows = r["cold_start"], []
    for phase, what in (("fresh", "a new state directory"), ("restart", "a restart after a clean stop")):
        api, air = cold[f"{phase}_api_s"], cold[f"{phase}_first_on_air_s"]
        rows.append(
            Row(
                f"cold start, warm cache, {what}: spawn → API answering / first frame on the air",
                f"{api:.2f} / {air:.2f} s (daemon CPU until the API answers {cold[f'{phase}_cpu_until_api_s']:.2f} s)",
                "",
                "≤ 0.5 s",
                max(api, air) <= 0.5,
                f"bench_restart.py, median of {cold['runs']}",
            )
        )
    rows.append(
        Row(
            f"restart after kill -9: {r['messages']['mapem']} MAPEM + {r['messages']['ivim']} IVIM back on the air",
            f"{r['all_on_air_s']:.2f} s",
            "",
            "≤ 1.0 s",
            r["all_on_air_s"] <= 1.0,
            "bench_restart.py",
        )
    )
    return rows


def load_rows(tmp: Path, quick: bool) -> list[Row]:
    ns = "100,300,500" if quick else "100,200,300,500"
    r = _run(
        "bench_load.py",
        "--n",
        ns,
        "--seconds",
        "4" if quick else "6",
        "--warmup",
        "2",
        "--no-triple",
        out=tmp / "load.json",
    )
    sign, rows_by_n = r["sign_us"], {row["n"]: row for row in r["rows"]}
    served = [n for n, row in rows_by_n.items() if row["delivered"] >= 0.99]
    capacity = max(served) if served else None
    at = rows_by_n[ONE_CORE_N]
    sat = max(rows_by_n.values(), key=lambda row: row["delivered_per_s"])
    how = f"bench_load.py --n {ns}: daemon on one core, 10 Hz SPATEM + 1 Hz MAPEM each"
    rows = [
        Row(
            "one core: intersections served (≥ 99 % of SPATEM delivered)",
            f"{capacity if capacity else f'< {min(rows_by_n)}'} (of N = {ns})",
            "",
            f"≥ {ONE_CORE_N}",
            bool(capacity and capacity >= ONE_CORE_N),
            how,
        ),
        Row(
            f"one core at {ONE_CORE_N} intersections: SPATEM delivered",
            f"{at['delivered']:.1%} ({at['delivered_per_s']:.0f} of {at['offered_per_s']:.0f}/s)",
            "",
            "≥ 99 %",
            at["delivered"] >= 0.99,
            how,
        ),
        Row(
            "one core at saturation: daemon CPU per delivered SPATEM (all its work)",
            f"{sat['cpu_ms_per_spatem'] * 1e3:.0f} µs ({sat['spatem_per_cpu_s']:.0f} SPATEM per CPU-second)",
            _x(sat["cpu_ms_per_spatem"] * 1e3, sign) + " sign",
            f"≤ {1e6 / (ONE_CORE_N * 11) / sign:.0f}× sign (500 per core)",
            None,
            how,
        ),
    ]
    if capacity:
        c = rows_by_n[capacity]
        rows.append(
            Row(
                f"one core: p99 lateness (feed → datagram) at {capacity} intersections",
                f"{c['p99_ms']:.1f} ms (p50 {c['p50_ms']:.1f})",
                "",
                "≤ 5 ms",
                c["p99_ms"] <= 5,
                how,
            )
        )
    rows.append(
        Row(
            "one core: lateness p50 / p99 (feed → datagram) at each N",
            ", ".join(
                f"{n}: {rows_by_n[n]['p50_ms']:.1f} / {rows_by_n[n]['p99_ms']:.1f} ms" for n in sorted(rows_by_n)
            ),
            "",
            "",
            None,
            how,
        )
    )
    rows.append(
        Row(f"RSS at {ONE_CORE_N} intersections", f"{at['rss_mb']:.0f} MB", "", "≤ 100 MB", at["rss_mb"] <= 100, how)
    )
    if capacity and capacity * 3 <= 3000:
        base = rows_by_n[capacity]
        t = (
            rows_by_n.get(3 * capacity)
            or _run(
                "bench_load.py",
                "--n",
                str(3 * capacity),
                "--seconds",
                "4" if quick else "6",
                "--warmup",
                "2",
                "--no-triple",
                out=tmp / "load3.json",
            )["rows"][0]
        )
        share = t["delivered_per_s"] / base["delivered_per_s"]
        rows.append(
            Row(
                f"overload: throughput at 3× capacity ({3 * capacity} intersections) against capacity",
                f"{share:.0%} ({t['delivered_per_s']:.0f} vs {base['delivered_per_s']:.0f} SPATEM/s; all frames, "
                f"SPATEM + MAPEM: {t['frames_per_s'] / base['frames_per_s']:.0%}; "
                f"{t['feed_socket_overflow']:.0f} kernel drops)",
                "",
                "≥ 95 %",
                share >= 0.95,
                how,
            )
        )
    return rows


def workers_rows(tmp: Path, quick: bool) -> list[Row]:
    cores = len(os.sched_getaffinity(0))
    counts = "1,2" if cores >= 2 else "1"
    # at and beyond one core's capacity per worker (each count's best is kept: saturated, not drowned in
    # superseded datagrams)
    r = _run(
        "bench_workers.py",
        "--workers",
        counts,
        "--per-worker",
        "300" if quick else "250,300",
        "--seconds",
        "5" if quick else "6",
        "--warmup",
        "2",
        "--repeat",
        "1",
        out=tmp / "workers.json",
    )
    cap = {w: max(x["delivered_per_s"] for x in r if x["workers"] == w) for w in {x["workers"] for x in r}}
    if 2 not in cap:
        return [
            Row(
                "all cores: throughput with 2 workers against 1",
                "not measured (one CPU)",
                "",
                "≥ 0.8 of linear",
                None,
                "bench_workers.py",
            )
        ]
    share = cap[2] / (2 * cap[1])
    # CPU per SPATEM over all processes (supervisor and workers): what 2 workers would give with a core each,
    # which a 2-core machine that also runs the feeder and the capture cannot show in SPATEM/s
    cpu = {w: min(x["cpu_ms_per_spatem"] for x in r if x["workers"] == w) for w in cap}
    how = f"bench_workers.py, {cores} cores shared with the feeder and the capture"
    return [
        Row(
            "all cores: throughput with 2 worker processes against 1",
            f"{share:.2f} of linear ({cap[2]:.0f} vs {cap[1]:.0f} SPATEM/s)",
            "",
            "≥ 0.8 of linear",
            share >= 0.8,
            how,
        ),
        Row(
            "all cores: work per CPU-second with 2 workers against 1 (supervisor included)",
            f"{cpu[1] / cpu[2]:.2f} ({cpu[2] * 1e3:.0f} vs {cpu[1] * 1e3:.0f} µs CPU per SPATEM)",
            "",
            "≥ 0.8",
            cpu[1] / cpu[2] >= 0.8,
            how,
        ),
    ]


MEASURE = {
    "service": service_rows,
    "uper": uper_rows,
    "pipeline": pipeline_rows,
    "restart": restart_rows,
    "load": load_rows,
    "workers": workers_rows,
}


def table(rows: list[Row]) -> str:
    lines = ["| what | measured | ratio | goal | met |", "|---|---:|---:|---:|:---:|"]
    for r in rows:
        met = "" if r.met is None else ("yes" if r.met else "**no**")
        lines.append(f"| {r.what} | {r.measured} | {r.ratio} | {r.goal} | {met} |")
    return "\n".join(lines)


def update_readme(text: str) -> None:
    readme = README.read_text()
    head, sep, rest = readme.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise SystemExit(f"README.md has no {BEGIN} ... {END} markers")
    README.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer samples and intersection counts")
    ap.add_argument("--only", default=",".join(SECTIONS), help="comma-separated: " + ", ".join(SECTIONS))
    ap.add_argument("--json", help="also write the rows to this file")
    ap.add_argument("--update-readme", action="store_true", help="write the table into README.md")
    args = ap.parse_args()
    chosen = [s for s in args.only.split(",") if s]
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        ap.error(f"--only: unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    started = time.monotonic()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="rsu-bench-") as d:
        for section in SECTIONS:
            if section in chosen:
                rows += MEASURE[section](Path(d), args.quick)
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    stamp = (
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `python bench/run.py"
        f"{' --quick' if args.quick else ''}` in {time.monotonic() - started:.0f} s on {os.cpu_count()} × "
        f"{cpu}, Python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.1f} at the end."
    )
    text = f"{table(rows)}\n\n{stamp}"
    print(text)
    met = [r for r in rows if r.met is not None]
    print(f"\n{sum(1 for r in met if r.met)} of {len(met)} goals met.")
    if args.json:
        Path(args.json).write_text(json.dumps([r.__dict__ for r in rows], indent=1))
    if args.update_readme:
        if chosen != list(SECTIONS):
            raise SystemExit("--update-readme needs every section (no --only)")
        update_readme(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
