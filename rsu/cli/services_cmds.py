"""``rsu trigger|update|terminate|list SERVICE ...``: the IS_Triggering API from the command line.

They talk to a running daemon's API (``--api URL``, ``$RSU_API_URL``, default http://127.0.0.1:8301).
A refused request prints ``rsu: error: CODE: FIELD PATH: REASON`` and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rsu import catalog
from rsu.cli.common import CliError, add_api_option, print_json, read_source

SERVICES = tuple(catalog.SERVICE_ALIASES)  # service names, then message names


def _add_dissemination(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("dissemination parameters")
    g.add_argument("--interval", type=float, metavar="S", help="repetition interval in seconds")
    g.add_argument("--start", metavar="TIME", help="start of transmission (ISO 8601, or POSIX seconds)")
    g.add_argument("--stop", metavar="TIME", help="stop of transmission (ISO 8601, or POSIX seconds)")
    g.add_argument("--traffic-class", type=int, metavar="N", help="GN traffic class octet 0..255")
    g.add_argument("--lifetime", type=float, metavar="S", help="GN packet lifetime in seconds")
    g.add_argument("--hop-limit", type=int, metavar="N", help="GN maximum hop limit")
    g.add_argument("--priority", type=int, metavar="N", help="scheduler priority 0..7 (7 = most urgent)")
    g.add_argument("--transport", action="append", metavar="NAME", help="transport to use (repeatable)")
    area = g.add_mutually_exclusive_group()
    area.add_argument("--area", metavar="LAT,LON,RADIUS", help="GeoBroadcast circle (degrees, metres)")
    area.add_argument("--shb", action="store_true", help="single-hop broadcast (no destination area)")


def _add_payload(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument(
        "file",
        metavar="FILE",
        nargs="?",
        help="the payload: JER JSON file, or a file holding the UPER hex; - for stdin"
        + ("" if required else " (optional: parameters only)"),
    )
    p.add_argument("--hex", metavar="HEX", help="the payload as UPER hex on the command line")
    p.add_argument("--decision", metavar="REQUEST", help="TLC: answer the pending SREM request with this key")
    p.add_argument("--status", metavar="STATUS", help="TLC: the decision (granted, rejected, processing, ...)")
    p.add_argument("--rtcm", nargs="+", metavar="HEX", help="GPC: RTCM 3 frames (hex) instead of a payload")
    p.add_argument("--stream", metavar="NAME", help="GPC: correction stream name (default 'default')")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "trigger",
        help="trigger a new message of a service (API)",
        description="Trigger a message: TLM (a SPATEM state), RLT (MAPEM), IVI (IVIM), TLC (SSEM, "
        "a decision, or an SREM to relay), GPC (RTCMEM). Prints the identification.",
    )
    p.add_argument(
        "service",
        metavar="SERVICE",
        type=str.lower,
        choices=SERVICES,
        help=f"{', '.join(catalog.SERVICES)} (or a message name)",
    )
    _add_payload(p, True)
    _add_dissemination(p)
    add_api_option(p)
    p.set_defaults(func=cmd_trigger)

    p = sub.add_parser(
        "update",
        help="update / replace an active message (API)",
        description="Update an active message: new content and/or new dissemination parameters.",
    )
    p.add_argument("service", metavar="SERVICE", type=str.lower, choices=SERVICES)
    p.add_argument("id", metavar="ID", help="entry id (as `rsu list` shows it)")
    _add_payload(p, False)
    _add_dissemination(p)
    add_api_option(p)
    p.set_defaults(func=cmd_update)

    p = sub.add_parser(
        "terminate",
        help="terminate / delete an active message (API)",
        description="Terminate a message. IVI: --mode cancellation (default) or stop. TLC SSEM: "
        "--request KEY ends only that request's answer.",
    )
    p.add_argument("service", metavar="SERVICE", type=str.lower, choices=SERVICES)
    p.add_argument("id", metavar="ID")
    p.add_argument("--mode", choices=("cancellation", "stop"), help="IVI termination mode")
    p.add_argument("--request", metavar="KEY", help="TLC: the request whose answer ends")
    add_api_option(p)
    p.set_defaults(func=cmd_terminate)

    p = sub.add_parser(
        "list",
        help="list active messages (API)",
        description="List the active messages of every service, of one service, or show one entry with its payload.",
    )
    p.add_argument("service", metavar="SERVICE", nargs="?", type=str.lower, choices=SERVICES)
    p.add_argument("id", metavar="ID", nargs="?", help="show this entry (with its payload) as JSON")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_api_option(p)
    p.set_defaults(func=cmd_list)


# --- building requests -------------------------------------------------------------------------


def _payload(args: argparse.Namespace) -> Any:
    if args.file and args.hex:
        raise CliError("give FILE or --hex, not both")
    if args.hex:
        return "".join(args.hex.split())
    if not args.file:
        return None
    text = read_source(args.file, binary=False)
    assert isinstance(text, str)
    stripped = text.strip()
    if stripped.startswith(("{", "[")):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError as e:
            raise CliError(f"{args.file}: invalid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    cleaned = "".join(stripped.replace(":", "").split())
    try:
        bytes.fromhex(cleaned)
    except ValueError:
        raise CliError(f"{args.file}: neither JER JSON nor UPER hex") from None
    return cleaned


def _dissemination(args: argparse.Namespace) -> dict:
    d: dict[str, Any] = {}
    if args.interval is not None:
        d["repetition_interval_s"] = args.interval
    for name, key in (("start", "start"), ("stop", "stop")):
        v = getattr(args, name)
        if v is not None:
            try:
                d[key] = float(v)
            except ValueError:
                d[key] = v
    for name, key in (
        ("traffic_class", "traffic_class"),
        ("lifetime", "lifetime_s"),
        ("hop_limit", "hop_limit"),
        ("priority", "priority"),
    ):
        v = getattr(args, name)
        if v is not None:
            d[key] = v
    if args.transport:
        d["transports"] = args.transport
    if args.shb:
        d["destination"] = None
    elif args.area:
        try:
            lat, lon, radius = (float(x) for x in args.area.split(","))
        except ValueError:
            raise CliError(f"--area {args.area!r}: expected LAT,LON,RADIUS") from None
        d["destination"] = {"latitude": lat, "longitude": lon, "shape": "circle", "a": radius}
    return d


def _request(args: argparse.Namespace, *, need_content: bool) -> dict:
    body: dict[str, Any] = {}
    payload = _payload(args)
    if payload is not None:
        body["payload"] = payload
    if args.decision or args.status:
        if not (args.decision and args.status):
            raise CliError("--decision and --status go together")
        body["decision"] = {"request": args.decision, "status": args.status}
    if args.rtcm:
        body["rtcm"] = args.rtcm
    if args.stream:
        body["stream"] = args.stream
    diss = _dissemination(args)
    if diss:
        body["dissemination"] = diss
    if need_content and not ({"payload", "decision", "rtcm"} & set(body)):
        raise CliError("nothing to trigger: give FILE, --hex, --decision or --rtcm")
    if not body:
        raise CliError("nothing to update: give FILE, --hex, --decision, --rtcm or dissemination options")
    return body


# --- commands ----------------------------------------------------------------------------------


def _client(args: argparse.Namespace):
    from rsu.api.client import Client

    return Client(args.api)


def _call(fn, *a):
    from rsu.api.client import ApiError, ApiUnreachable

    try:
        return fn(*a)
    except ApiError as e:
        raise CliError(str(e)) from None
    except ApiUnreachable as e:
        raise CliError(str(e)) from None


def _answer(answer: dict) -> int:
    for w in answer.get("warnings") or []:
        print(f"rsu: warning: {w}", file=sys.stderr)
    print_json(answer)
    return 0


def cmd_trigger(args: argparse.Namespace) -> int:
    body = _request(args, need_content=True)
    return _answer(_call(_client(args).trigger, args.service, body))


def cmd_update(args: argparse.Namespace) -> int:
    body = _request(args, need_content=False)
    return _answer(_call(_client(args).update, args.service, args.id, body))


def cmd_terminate(args: argparse.Namespace) -> int:
    body = {k: v for k, v in (("mode", args.mode), ("request", args.request)) if v}
    return _answer(_call(_client(args).terminate, args.service, args.id, body))


def cmd_list(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.id:
        if not args.service:
            raise CliError("give SERVICE with ID")
        print_json(_call(client.get, args.service, args.id))
        return 0
    entries = _call(client.list, args.service)
    if args.json:
        print_json(entries)
        return 0
    if not entries:
        print("no active messages")
        return 0
    rows = [("SERVICE", "ID", "MESSAGE", "STATE", "NEXT", "IDENTIFICATION")]
    for e in entries:
        rows.append(
            (
                e["service"],
                e["id"],
                e["message"],
                e["state"],
                e.get("next_transmission") or "-",
                _summary(e["identification"]),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print("  ".join(r[i].ljust(widths[i]) for i in range(5)) + "  " + r[5])
    return 0


def _summary(ident: dict) -> str:
    parts = []
    for k, v in ident.items():
        if isinstance(v, (dict, list)):
            v = json.dumps(v, separators=(",", ":"))
        parts.append(f"{k}={v}")
    text = " ".join(parts)
    return text if len(text) <= 100 else text[:97] + "..."
