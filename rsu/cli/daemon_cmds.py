"""``rsu run``, ``rsu check-config`` and ``rsu status``: running the daemon and looking at it."""

from __future__ import annotations

import argparse
import sys

from rsu.cli.common import CliError, add_api_option, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run the RSU daemon",
        description="Run the RSU daemon. Without --config it runs the embedded default: "
        "GeoNetworking over UDP on loopback, a local test PKI in the state "
        "directory, the API on 127.0.0.1:8301.",
    )
    p.add_argument("--config", metavar="FILE", help="YAML configuration file")
    p.add_argument(
        "--set",
        metavar="PATH=VALUE",
        action="append",
        default=[],
        dest="overrides",
        help="override one setting of the file or of the embedded default, e.g. api.port=8302 or "
        "transports[0].group=239.1.2.3 (VALUE is YAML; repeatable; kept across reloads)",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "check-config",
        help="validate a configuration file and list every error",
        description="Validate FILE (all errors at once, each with its path), then check it against "
        "this host: state directory writable, PKI loadable, API and controller "
        "addresses free to bind, pcap, TLS, password and MAP files usable. Run it as "
        "the daemon's user (sudo -u rsu ...). Exit 0 if valid, 2 if not.",
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument(
        "--no-host-checks",
        action="store_true",
        help="check the file only, not this host (e.g. a file meant for another machine)",
    )
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser(
        "status",
        help="what the running daemon has on the air",
        description="Ask the running daemon (its API) what is on the air: active messages per "
        "service with id, next and last send, count, transports; the ATs in use.",
    )
    add_api_option(p)
    p.add_argument("--json", action="store_true", help="print the raw JSON")
    p.set_defaults(func=cmd_status)


def cmd_run(args: argparse.Namespace) -> int:
    import gc

    # no cyclic collection while the modules load and the daemon starts (about a tenth of the import
    # time): rsu.ops.runner.serve collects once, freezes what start-up made and turns it back on
    gc.disable()
    from rsu.ops.runner import run

    return run(args.config, args.overrides)


def cmd_check_config(args: argparse.Namespace) -> int:
    from rsu.ops import config as cfgmod
    from rsu.ops.config_core import ConfigError
    from rsu.ops.preflight import host_issues

    try:
        config = cfgmod.load(args.file)
        issues = [] if args.no_host_checks else [h.issue for h in host_issues(config)]
    except ConfigError as e:
        issues = e.issues
    if issues:
        print(f"{args.file}: {len(issues)} error(s)", file=sys.stderr)
        for issue in issues:
            print(f"  {issue}", file=sys.stderr)
        return 2
    print(f"{args.file}: valid")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from rsu.api.client import ApiError, ApiUnreachable, Client

    client = Client(args.api, timeout=5)
    try:
        status = client.request("GET", "/v1/status")
    except (ApiError, ApiUnreachable) as e:
        raise CliError(str(e)) from None
    except ValueError:
        raise CliError(f"{client.base_url}/v1/status: the answer is not JSON") from None
    if args.json:
        print_json(status)
        return 0
    print(
        f"rsu {status.get('version')} station {status.get('station_id')}  up since {status.get('started_at')}  "
        f"security {status.get('security')}  transports {', '.join(status.get('transports', []))}"
    )
    for w in status.get("workers") or []:  # workers: N (docs/scaling.md)
        print(
            f"  worker {w['worker']}: {w['state']}, pid {w['pid']}, {len(w['intersections'])} intersection(s), "
            f"{w['restarts']} restart(s)" + (f", last exit {w['last_exit']}" if w["last_exit"] is not None else "")
        )
    messages = status.get("messages", [])
    print(f"\n{len(messages)} message(s) on the air")
    if messages:
        print(
            f"  {'service':<7} {'message':<7} {'id':<28} {'state':<11} {'count':>6}  {'last send':<27} "
            f"{'next send':<27} transports"
        )
        for m in messages:
            print(
                f"  {m['service']:<7} {m['message']:<7} {m['id']:<28} {m['state']:<11} {m['count']:>6}  "
                f"{m.get('last_send') or '-':<27} {m.get('next_send') or '-':<27} {', '.join(m.get('transports') or [])}"
            )
    tickets = status.get("authorization_tickets", [])
    if tickets:
        print("\nauthorization tickets")
        for t in tickets:
            used = ", ".join(t.get("usedFor") or []) or "-"
            print(
                f"  {t['label']:<10} {t['hashedId8']}  expires in {t['hoursToExpiry']:.1f} h  "
                f"{'valid' if t.get('validNow') else 'NOT VALID'}  in use for: {used}"
            )
    if status.get("clock"):
        _print_clock(status["clock"])
    if status.get("pki"):
        _print_pki(status["pki"])
    return 0


def _print_clock(clock: dict) -> None:
    """The clock and GNSS part of ``rsu status`` (rsu.health.monitor's status)."""

    def seconds(v) -> str:
        return "unknown" if v is None else f"{v * 1000:+.3f} ms"

    state = "synchronized" if clock.get("synchronized") else "NOT SYNCHRONIZED"
    print(f"\nclock     {state} (source {clock.get('source')}: {clock.get('detail')})")
    error = clock.get("error_s")
    print(
        f"  offset {seconds(clock.get('offset_s'))}  error bound "
        f"{'unknown' if error is None else f'{error * 1000:.3f} ms'}  policy {clock.get('policy')} for "
        f"{', '.join(clock.get('timed_messages') or []) or '-'}"
    )
    gnss = clock.get("gnss")
    if gnss:
        where = (
            f"{gnss['latitude']:.7f}, {gnss['longitude']:.7f}" if gnss.get("latitude") is not None else "no position"
        )
        print(
            f"gnss      {'connected' if gnss.get('connected') else 'NOT CONNECTED'}  fix {gnss.get('fix')}  {where}"
            f"  satellites used {gnss.get('satellites_used') if gnss.get('satellites_used') is not None else '-'}"
        )


def _print_pki(pki: dict) -> None:
    """The PKI client part of ``rsu status`` (same facts as ``rsu pki status``, from the running daemon)."""
    ec = pki.get("ec")
    print("\nPKI client")
    print(f"  EC        {ec['hashedId8']}  until {ec['end']} ({ec['hoursLeft']} h)" if ec else "  EC        none")
    print(f"  ATs       {pki.get('atsUsable', 0)} usable of {len(pki.get('ats', []))}")
    trust = pki.get("trust") or {}
    age = trust.get("ageSeconds")
    print(
        f"  trust     {len(trust.get('roots') or {})} root(s), oldest list applied "
        f"{'never' if age is None else f'{age:.0f} s ago'}"
    )
    for name, job in (pki.get("jobs") or {}).items():
        err = job.get("lastError")
        if err:
            print(f"  {name:<9} last error: {err['reason']} {err.get('detail', '')}".rstrip())
    signing = pki.get("signing") or {}
    for h8, why in (signing.get("refused") or {}).items():
        print(f"  AT {h8} not used: {why}")
    for h8, why in (signing.get("regionNotChecked") or {}).items():
        print(f"  AT {h8} used, region not checked: {why}")
