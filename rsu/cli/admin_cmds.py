"""``rsu audit show`` and ``rsu admin unban | lockout | token add|list|revoke``: the API's security, for its admin.

``rsu audit show`` reads the audit log file (``--config FILE`` or ``--state-dir DIR`` find it as the daemon
does; ``--file`` names it). The admin commands talk to the running daemon's API with an admin credential
(``$RSU_API_TOKEN_FILE`` / ``$RSU_API_TOKEN``, or ``$RSU_API_CERT`` + ``$RSU_API_KEY``; ``$RSU_API_CACERT``
verifies the server: see rsu.api.client). ``rsu admin token add --config FILE`` (or ``--state-dir``)
writes the token store directly instead: the first admin token, before there is one to authenticate
with; the daemon reads the store again when it changes.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from rsu.cli.common import CliError, add_api_option, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit",
        help="the audit log of the API (who changed what, when)",
        description="The audit log: one JSON line per state change or security event "
        "(trigger, update, stop, reload, login-failure, ban, unban, token-add, ...).",
    )
    cmds = p.add_subparsers(dest="audit_command", metavar="ACTION")
    q = cmds.add_parser(
        "show",
        help="print the entries that match (oldest first, rotated files included)",
        description="Print the audit entries that match every filter given, oldest first.",
    )
    _where(q)
    q.add_argument(
        "--file", metavar="PATH", help="the audit log (default: api.audit.file, else <state_dir>/audit.jsonl)"
    )
    q.add_argument(
        "--since", metavar="TIME", help="from this UTC time on (ISO 8601: 2026-12-03 or 2026-12-03T10:00:00Z)"
    )
    q.add_argument("--until", metavar="TIME", help="before this UTC time")
    q.add_argument("--identity", metavar="TEXT", help="identities containing TEXT (token:<id>, cert:CN=...)")
    q.add_argument(
        "--action",
        metavar="ACTION",
        help="trigger, update, stop, feed, reload, login-failure, ban, unban, token-add, token-revoke",
    )
    q.add_argument("--result", metavar="RESULT", help="ok, or a refusal such as forbidden or wrong_secret")
    q.add_argument("--json", action="store_true", help="one JSON object per line, as stored")
    q.set_defaults(func=cmd_audit_show)
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])

    p = sub.add_parser(
        "admin",
        help="lift bans and manage API tokens (needs the admin role)",
        description="Security administration of the running daemon's API.",
    )
    cmds = p.add_subparsers(dest="admin_command", metavar="ACTION")
    q = cmds.add_parser(
        "unban",
        help="lift a lockout ban",
        description="Lift the ban of a client address "
        "(addr:192.0.2.7) or identity (id:token:<id>, id:cert:CN=...), or of every banned key: "
        "through the API, or with --config/--state-dir in the state directory (on the box, when "
        "every admin is locked out; the running daemon reads it again).",
    )
    q.add_argument("key", metavar="KEY", nargs="?", help="addr:<address> or id:<identity> (see rsu admin lockout)")
    q.add_argument("--all", action="store_true", help="every ban")
    _local_or_api(q)
    q.set_defaults(func=cmd_unban)
    q = cmds.add_parser("lockout", help="counted addresses and identities, with their bans")
    add_api_option(q)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_lockout)

    q = cmds.add_parser(
        "token",
        help="bearer tokens: add, list, revoke",
        description="Bearer tokens of the API (stored hashed; the token is shown once, at add).",
    )
    tok = q.add_subparsers(dest="token_command", metavar="ACTION")
    t = tok.add_parser("add", help="make a token (printed once: keep it in a file readable by its user only)")
    t.add_argument("--role", required=True, choices=("monitor", "operator", "admin"))
    t.add_argument("--name", default="", help="who or what it is for (shown by list and in the audit log)")
    t.add_argument("--valid", default="90d", metavar="DURATION", help="validity, e.g. 12h, 30d (default 90d)")
    _local_or_api(t)
    t.set_defaults(func=cmd_token_add)
    t = tok.add_parser("list", help="every token: id, role, name, expiry (never the secret)")
    _local_or_api(t)
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_token_list)
    t = tok.add_parser("revoke", help="revoke a token by its id")
    t.add_argument("id", metavar="ID")
    _local_or_api(t)
    t.set_defaults(func=cmd_token_revoke)
    q.set_defaults(func=lambda args: (q.print_help(sys.stderr), 2)[1])
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])


def _where(q: argparse.ArgumentParser) -> None:
    where = q.add_mutually_exclusive_group()
    where.add_argument("--config", metavar="FILE", help="the daemon's configuration file (its state_dir)")
    where.add_argument("--state-dir", metavar="DIR", help="the state directory itself")


def _local_or_api(q: argparse.ArgumentParser) -> None:
    _where(q)
    add_api_option(q)


def _config(args: argparse.Namespace):
    from rsu.ops import config as cfgmod
    from rsu.ops.config_core import ConfigError

    try:
        return cfgmod.load(getattr(args, "config", None))
    except ConfigError as e:
        raise CliError(
            f"{args.config or 'embedded default'}: invalid configuration: " + "; ".join(str(i) for i in e.issues)
        ) from None


def _state_dir(args: argparse.Namespace) -> Path:
    if getattr(args, "state_dir", None):
        return Path(args.state_dir).expanduser()
    return _config(args).state_path


def _local(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "config", None) or getattr(args, "state_dir", None))


def _api(args: argparse.Namespace, method: str, path: str, body: dict | None = None) -> dict:
    from rsu.api.client import ApiError, ApiUnreachable, Client

    try:
        return Client(getattr(args, "api", None)).request(method, path, body)
    except (ApiError, ApiUnreachable) as e:
        raise CliError(str(e)) from None


# ---------------------------------------------------------------------------------------------- audit


def cmd_audit_show(args: argparse.Namespace) -> int:
    import json

    from rsu.ops import audit as auditmod

    if args.file:
        path = Path(args.file).expanduser()
    elif args.state_dir:
        path = Path(args.state_dir).expanduser() / "audit.jsonl"
    else:
        config = _config(args)
        path = (config.api.audit.file or config.state_path / "audit.jsonl").expanduser()
    try:
        since = auditmod.parse_time(args.since) if args.since else None
        until = auditmod.parse_time(args.until) if args.until else None
    except ValueError:
        raise CliError("--since/--until: expected an ISO 8601 time such as 2026-12-03T10:00:00Z") from None
    if not auditmod.files(path):
        raise CliError(f"{path}: no audit log there")
    where = auditmod.Filter(since, until, args.identity, args.action, args.result)
    try:
        for e in auditmod.read(path, where):
            if args.json:
                print(json.dumps(e, ensure_ascii=False))
                continue
            target = " ".join(f"{k}={v}" for k, v in (e.get("target") or {}).items())
            print(
                f"{e.get('time', '?'):<24} {e.get('action', '?'):<13} {e.get('result', '?'):<14} "
                f"{e.get('identity') or '-'} ({e.get('role') or '-'}) from {e.get('address') or '-'}"
                + (f"  {target}" if target else "")
                + (f"  [{e['detail']}]" if e.get("detail") else "")
            )
    except PermissionError:
        raise CliError(f"{path}: permission denied (run as the daemon's user)") from None
    return 0


# ---------------------------------------------------------------------------------------------- lockout


def cmd_unban(args: argparse.Namespace) -> int:
    if bool(args.key) == bool(args.all):
        raise CliError("give a KEY (addr:<address> or id:<identity>) or --all")
    if _local(args):
        from rsu.api.lockout import Lockout, LockoutFile
        from rsu.clock import SystemClock

        directory = _state_dir(args)
        table, lockout = LockoutFile(directory / "api-lockout.json"), Lockout(SystemClock(), max_entries=10**6)
        table.load(lockout)
        lifted = lockout.unban(None if args.all else args.key)
        try:
            table.save(lockout)
        except OSError as e:
            raise CliError(f"{table.path}: {e.strerror or e}") from None
        _local_audit(args, directory, "unban", {"key": args.key or "all"}, "rsu admin unban (state directory)")
    else:
        lifted = _api(args, "POST", "/v1/admin/unban", {"all": True} if args.all else {"key": args.key}).get(
            "unbanned", []
        )
    print(f"lifted: {', '.join(lifted)}" if lifted else "nothing to lift (no such key)")
    return 0 if lifted or args.all else 2


def cmd_lockout(args: argparse.Namespace) -> int:
    from rsu.clock import iso_utc

    entries = _api(args, "GET", "/v1/admin/lockout").get("entries", [])
    if args.json:
        print_json(entries)
        return 0
    for e in entries:
        until = e.get("banned_until")
        ban = (
            "not banned"
            if until is None
            else "banned until unbanned"
            if until == "forever"
            else f"banned until {iso_utc(until)}"
        )
        print(f"{e['key']:<40} {e['failures']:>3} failure(s), last {iso_utc(e['last_failure'])}  {ban}")
    return 0


# ---------------------------------------------------------------------------------------------- tokens


def _store(args: argparse.Namespace):
    from rsu.api.auth import TokenStore
    from rsu.clock import SystemClock

    directory = _state_dir(args)
    return TokenStore(directory / "api-tokens.json", SystemClock()), directory


def _local_audit(
    args: argparse.Namespace,
    directory: Path,
    action: str,
    target: dict,
    detail: str = "rsu admin token (state directory)",
) -> None:
    """The local change in the audit log too (identity: the user on this machine)."""
    from rsu.clock import SystemClock
    from rsu.ops import audit as auditmod

    path = directory / "audit.jsonl"
    if getattr(args, "config", None):
        path = (_config(args).api.audit.file or path).expanduser()
    log = auditmod.AuditLog(path, SystemClock())
    try:
        log.write(
            identity=f"local:{getpass.getuser()}",
            role="admin",
            action=action,
            target=target,
            result="ok",
            detail=detail,
        )
    except OSError as e:
        print(f"rsu: warning: the audit log {path} was not written: {e.strerror or e}", file=sys.stderr)
    finally:
        log.close()


def cmd_token_add(args: argparse.Namespace) -> int:
    from rsu.api.auth import TokenStoreError
    from rsu.ops.config_core import parse_duration

    try:
        valid = parse_duration(args.valid)
    except ValueError as e:
        raise CliError(f"--valid: {e}") from None
    if _local(args):
        store, directory = _store(args)
        try:
            ident, token = store.add(args.role, args.name, valid)
        except (TokenStoreError, OSError) as e:
            raise CliError(str(e)) from None
        _local_audit(args, directory, "token-add", {"token": ident})
        expires = store.get(ident)["expires"]
    else:
        answer = _api(args, "POST", "/v1/admin/tokens", {"role": args.role, "name": args.name, "valid": args.valid})
        ident, token, expires = answer["id"], answer["token"], answer["expires"]
    print(
        f"token {ident} ({args.role}) valid until {expires}; shown once, keep it in a file only its user reads:",
        file=sys.stderr,
    )
    print(token)
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    if _local(args):
        tokens = _store(args)[0].list()
    else:
        tokens = _api(args, "GET", "/v1/admin/tokens").get("tokens", [])
    if args.json:
        print_json(tokens)
        return 0
    for t in tokens:
        print(
            f"{t['id']}  {t['role']:<8} until {t['expires']}{' (EXPIRED)' if t.get('expired') else ''}  "
            f"{t.get('name') or ''}".rstrip()
        )
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    from rsu.api.auth import TokenStoreError

    if _local(args):
        store, directory = _store(args)
        try:
            store.revoke(args.id)
        except TokenStoreError as e:
            raise CliError(str(e)) from None
        _local_audit(args, directory, "token-revoke", {"token": args.id})
    else:
        _api(args, "DELETE", f"/v1/admin/tokens/{args.id}")
    print(f"token {args.id} revoked")
    return 0
