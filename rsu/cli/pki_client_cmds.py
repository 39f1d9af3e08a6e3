"""``rsu pki enrol``, ``rsu pki authorize``, ``rsu pki status``, ``rsu pki trust update``: the TS 102 941
client driven against the URLs of the configuration's ``pki:`` section (see :mod:`rsu.pki.config`).

Each command loads the client state (``pki.state_dir``), does one pass of what is due for its
job(s) over HTTP, prints JSON ``{"outcomes": [...], "status": {...}}`` and exits 0 when every
outcome was ok (and the thing asked for is there), 1 when something failed (named in the
outcome and in ``status.jobs``), 2 on a configuration or usage error.
"""

from __future__ import annotations

import argparse

from rsu.cli.common import CliError, print_json


def register(pki_sub: argparse._SubParsersAction, trust_sub: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", required=True, help="YAML configuration with a pki: section")
    common.add_argument("--now", metavar="ISO8601", help="act as if it were this time (tests, replays)")
    q = pki_sub.add_parser(
        "enrol",
        parents=[common],
        help="enrol (or re-enrol) at the EA of the configured PKI",
        description="Fetch the trust lists if due, then enrol with the canonical key (no valid "
        "EC) or re-enrol with the EC (inside pki.re_enrol_margin, or --renew). "
        "Makes the canonical key and id on first use and prints them: the EA "
        "operator must know them before the first enrolment succeeds.",
    )
    q.add_argument("--renew", action="store_true", help="re-enrol now even if the EC is not due")
    q.set_defaults(func=cmd_enrol)
    q = pki_sub.add_parser(
        "authorize",
        parents=[common],
        help="fill the AT pool from the AA",
        description="Fetch the trust lists if due, then request ATs until pki.at_pool are "
        "fresh (the EC must be valid: rsu pki enrol first).",
    )
    q.set_defaults(func=cmd_authorize)
    q = pki_sub.add_parser("status", parents=[common], help="EC, ATs, trust store, expiries, last errors (offline)")
    q.set_defaults(func=cmd_status)
    q = trust_sub.add_parser(
        "update",
        parents=[common],
        help="fetch the ECTL, CTL and CRL now",
        description="Fetch the ECTL from the CPOC and the configured root's CTL and CRL "
        "from its DC, verify and store them (each only when complete).",
    )
    q.set_defaults(func=cmd_trust_update)


def _now(args):
    from rsu.clock import ManualClock, SystemClock, parse_iso8601

    if args.now is None:
        return SystemClock()
    try:
        return ManualClock(parse_iso8601(args.now).timestamp())
    except ValueError:
        raise CliError(f"--now {args.now!r}: not an ISO 8601 date-time") from None


def _client(args, *, identity: bool = False, read_only: bool = False):
    """(section, client, canonical id made or None, state lock or None). A command that changes the
    state takes the state lock exclusively: refused while a daemon runs on the same state directory."""
    from rsu import statelock
    from rsu.ops import config as cfgmod
    from rsu.ops.config_core import ConfigError
    from rsu.pki import config as pkicfg
    from rsu.pki.client import PkiClient, lock_state
    from rsu.pki.errors import PkiError
    from rsu.pki.identity import ensure_identity

    try:
        cfg = cfgmod.load(args.config)
    except ConfigError as e:
        raise CliError(str(e)) from None
    if cfg.pki is None:
        raise CliError(f"{args.config}: no pki: section (the PKI client is not configured)")
    section = cfg.pki
    state = pkicfg.state_path(section, cfg.state_path)
    provider = cfg.services.ivi_provider.service_provider
    lock = store = None
    try:
        lock = None if read_only else lock_state(state, exclusive=True)
        store = pkicfg.open_store(section, cfg.state_path)
        made = ensure_identity(store, state, pkicfg.its_id_bytes(section.its_id)) if identity else None
        client = PkiClient.load(pkicfg.client_config(section, provider), store, state, read_only=read_only)
    except (PkiError, ValueError) as e:
        if store is not None:
            store.close()
        statelock.release(lock)
        raise CliError(f"pki: {e}") from None
    return section, client, made, lock


def _run(args, jobs: tuple[str, ...], *, identity: bool = False, prepare=None, done=None) -> int:
    import asyncio

    from rsu import statelock
    from rsu.pki import config as pkicfg
    from rsu.pki.http import settle

    clock = _now(args)
    section, client, made, lock = _client(args, identity=identity)
    if prepare is not None:
        prepare(client)

    async def go():
        async with pkicfg.transport(section) as transport:
            return await settle(client, transport, clock, jobs=jobs)

    try:
        outcomes = asyncio.run(go())
    finally:
        client.keys.close()
        statelock.release(lock)
    now = clock.now()
    out = {
        "outcomes": [{"job": o.job, "result": o.result, "detail": o.detail} for o in outcomes],
        "status": client.status(now),
    }
    if made is not None:
        out["canonical"] = made
    print_json(out)
    ok = all(o.ok for o in outcomes) and not any(client.jobs[j].last_error and client.jobs[j].failures for j in jobs)
    return 0 if ok and (done is None or done(client, now)) else 1


def cmd_enrol(args: argparse.Namespace) -> int:
    def renew(client):
        if args.renew:
            client.config.re_enrol_margin = float("inf")

    return _run(
        args,
        ("trust", "enrol"),
        identity=True,
        prepare=renew,
        done=lambda c, now: c.ec is not None and c.ec.certificate.valid_at(now),
    )


def cmd_authorize(args: argparse.Namespace) -> int:
    return _run(args, ("trust", "authorize"), done=lambda c, now: len(c.usable_ats(now)) > 0)


def cmd_trust_update(args: argparse.Namespace) -> int:
    return _run(args, ("trust",), done=lambda c, now: c.trust.ectl is not None)


def cmd_status(args: argparse.Namespace) -> int:
    clock = _now(args)
    _, client, _, _ = _client(args, read_only=True)  # no lock: works while the daemon runs
    try:
        print_json(client.status(clock.now()))
    finally:
        client.keys.close()
    return 0
