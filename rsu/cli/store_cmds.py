"""``rsu store check | recover | export | import``: the store of active messages, for the person on call.

The store is found like the daemon finds it: ``--state-dir DIR``, else the ``state_dir`` of
``--config FILE``, else the embedded default's (``$STATE_DIRECTORY``, else ``~/.local/state/rsu``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rsu.cli.common import CliError, load_json, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "store",
        help="check, repair, export and import the store of active messages",
        description="The store of active messages (services.sqlite3) and its identifier cursors "
        "(services.cursors.json) in the state directory.",
    )
    cmds = p.add_subparsers(dest="store_command", metavar="ACTION")

    def add(name: str, func, help_text: str, description: str) -> argparse.ArgumentParser:
        q = cmds.add_parser(name, help=help_text, description=description)
        q.set_defaults(func=func)
        where = q.add_mutually_exclusive_group()
        where.add_argument("--config", metavar="FILE", help="the daemon's configuration file (its state_dir)")
        where.add_argument("--state-dir", metavar="DIR", help="the state directory itself")
        return q

    q = add(
        "check",
        cmd_check,
        "say what a start would find (read-only; fine while rsu runs)",
        "Check the store read-only: SQLite integrity, rows a start would skip, the cursor file, a lost or "
        "stale store. Exit 0 when all is well, 2 when something needs doing (each problem with its action).",
    )
    q.add_argument("--json", action="store_true", help="print the report as JSON")

    q = add(
        "recover",
        cmd_recover,
        "salvage a damaged store into a fresh one (rsu must be stopped)",
        "Copy every row SQLite can still read into a fresh store, take the identifier cursors further "
        "ahead from the cursor file, and keep the damaged file aside as services.sqlite3.damaged-<UTC time>. "
        "Does nothing to an intact store unless --force.",
    )
    q.add_argument("--force", action="store_true", help="rebuild an intact store too (drops rows a start skips)")

    q = add(
        "export",
        cmd_export,
        "write every active message and identifier cursor as JSON",
        "Write the store as JSON (read-only; fine while rsu runs): every entry with its UPER payload (hex) "
        "and every identifier cursor (the copy further ahead of store and cursor file).",
    )
    q.add_argument("-o", "--output", metavar="FILE", help="write to FILE (default: standard output)")

    q = add(
        "import",
        cmd_import,
        "load an export into the store (rsu must be stopped)",
        "Check the whole export first (every entry decodes, every field has its type) and refuse it when "
        "any identifier cursor would go backwards; only then write it, in one transaction. Entries replace "
        "those with the same service and id; other entries stay.",
    )
    q.add_argument("file", metavar="FILE", help="an `rsu store export` file (- for standard input)")
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])


def state_dir(args: argparse.Namespace) -> Path:
    if args.state_dir:
        return Path(args.state_dir).expanduser()
    from rsu.ops import config as cfgmod
    from rsu.ops.config_core import ConfigError

    try:
        return cfgmod.load(args.config).state_path
    except ConfigError as e:
        raise CliError(
            f"{args.config or 'embedded default'}: invalid configuration: " + "; ".join(str(i) for i in e.issues)
        ) from None


def _codec():
    from rsu.codec.facilities import get_codec

    return get_codec()


def cmd_check(args: argparse.Namespace) -> int:
    from rsu.services.storetool import check

    report = check(state_dir(args), _codec())
    if args.json:
        print_json(report)
        return 0 if report["ok"] else 2
    entries = report.get("entries") or {}
    print(
        f"{report['store']}: {report['integrity']}, {sum(entries.values())} entries "
        f"({', '.join(f'{k} {v}' for k, v in sorted(entries.items())) or 'none'}), {report['counters']} cursors, "
        f"last change {report['commit']}"
    )
    print(
        f"{report['cursor_file']}: {report['cursor_file_state']}"
        + (f", last change {report['cursor_file_commit']}" if report["cursor_file_commit"] is not None else "")
    )
    for problem in report["problems"]:
        print(f"problem: {problem}")
    for action in dict.fromkeys(report["actions"]):
        print(f"do: {action}")
    if report["ok"]:
        print("ok")
    return 0 if report["ok"] else 2


def cmd_recover(args: argparse.Namespace) -> int:
    from rsu.services.store import StoreError
    from rsu.services.storetool import StoreToolError, recover

    try:
        result = recover(state_dir(args), force=args.force, codec=_codec())
    except (StoreToolError, StoreError) as e:
        raise CliError(str(e)) from None
    if not result["recovered"]:
        print(f"{result['store']}: {result['reason']}")
        return 0
    entries = result["entries"]
    print(
        f"{result['store']}: recovered {sum(entries.values())} entries "
        f"({', '.join(f'{k} {v}' for k, v in sorted(entries.items())) or 'none'}) and {result['counters']} "
        f"identifier cursors ({len(result['counters_from_cursor_file'])} taken from the cursor file)"
    )
    if result["rows_skipped"] or result["damaged_ranges"]:
        print(
            f"lost: {len(result['rows_skipped'])} unusable row(s) {', '.join(result['rows_skipped'])}; "
            f"{result['damaged_ranges']} unreadable range(s) skipped: compare with what should be on the air "
            "(`rsu list` once rsu runs) and trigger what is missing"
        )
    print(f"the damaged file is kept as {result['damaged_copy']}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from rsu.services.storetool import StoreToolError, export

    try:
        doc = export(state_dir(args))
    except StoreToolError as e:
        raise CliError(str(e)) from None
    if args.output:
        try:
            Path(args.output).write_text(json.dumps(doc, indent=2) + "\n")
        except OSError as e:
            raise CliError(f"{args.output}: {e.strerror or e}") from None
        print(f"{args.output}: {len(doc['entries'])} entries, {len(doc['counters'])} cursors", file=sys.stderr)
    else:
        print_json(doc)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from rsu.services.store import StoreError
    from rsu.services.storetool import StoreToolError, import_store

    data = load_json(args.file)
    try:
        result = import_store(state_dir(args), data, _codec())
    except StoreToolError as e:
        for problem in e.problems:
            print(f"  {problem}", file=sys.stderr)
        raise CliError(str(e)) from None
    except StoreError as e:
        raise CliError(str(e)) from None
    entries = result["entries"]
    print(
        f"{result['store']}: imported {sum(entries.values())} entries "
        f"({', '.join(f'{k} {v}' for k, v in sorted(entries.items())) or 'none'}), "
        f"{result['counters_changed']} cursors moved forward"
    )
    return 0
