"""``rsu`` command line: one module per command family, each with a ``register(subparsers)`` function.

Every command returns an exit code. Bad input gives one line on stderr (``rsu: error: ...``)
and exit code 2, never a traceback; an unexpected internal error gives exit code 1.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from typing import NoReturn

from rsu import __version__
from rsu.cli.common import CliError

# Command families, imported when the parser is built. Keep their top-level imports light:
# heavy modules (codec, crypto, asyncio servers) are imported inside the handlers.
COMMAND_MODULES = (
    "rsu.cli.codec_cmds",
    "rsu.cli.security_cmds",
    "rsu.cli.daemon_cmds",
    "rsu.cli.services_cmds",
    "rsu.cli.store_cmds",
    "rsu.cli.admin_cmds",
    "rsu.cli.map_cmds",
)
# The family of each command: a command line naming one (first, or after the global --api URL) builds only
# its family's parsers (the 39 parsers of all families take about 10 ms at every ``rsu run``); help, no
# command or an unknown one builds them all. tests/test_cli_families.py checks it against the families.
COMMAND_FAMILY = {
    "encode": "rsu.cli.codec_cmds",
    "decode": "rsu.cli.codec_cmds",
    "cert": "rsu.cli.security_cmds",
    "pki": "rsu.cli.security_cmds",
    "verify": "rsu.cli.security_cmds",
    "run": "rsu.cli.daemon_cmds",
    "check-config": "rsu.cli.daemon_cmds",
    "status": "rsu.cli.daemon_cmds",
    "list": "rsu.cli.services_cmds",
    "trigger": "rsu.cli.services_cmds",
    "update": "rsu.cli.services_cmds",
    "terminate": "rsu.cli.services_cmds",
    "store": "rsu.cli.store_cmds",
    "admin": "rsu.cli.admin_cmds",
    "audit": "rsu.cli.admin_cmds",
    "map": "rsu.cli.map_cmds",
}


class _Parser(argparse.ArgumentParser):
    """Options and positionals may come in any order (``rsu trigger rlt --api URL FILE``)."""

    _intermixing = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # a value such as --area -33.85,151.21,500 (southern latitude) is a value, not an option
        self._negative_number_matcher = re.compile(r"^-\d*\.?\d+([,:]-?\d*\.?\d+)*$")

    def error(self, message: str) -> NoReturn:  # one line, exit 2 (argparse prints usage as well)
        raise CliError(f"{self.prog}: {message}")

    def parse_known_args(self, args=None, namespace=None):
        # A leaf command parses intermixed: plain argparse binds an optional positional (FILE?) to
        # nothing as soon as an option follows the first positional, then refuses FILE as extra.
        # Parsers with subcommands cannot parse intermixed and keep the plain rules.
        leaf = not any(a.nargs in (argparse.PARSER, argparse.REMAINDER) for a in self._get_positional_actions())
        if not leaf or self._intermixing:
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def family_of(argv: list[str]) -> str | None:
    """The command family of ``argv`` when its command is known and comes first (or after ``--api URL``);
    None: every family is needed (help, version, no command, an unknown one)."""
    rest = argv[2:] if argv[:1] == ["--api"] else argv[1:] if argv[:1] and argv[0].startswith("--api=") else argv
    return COMMAND_FAMILY.get(rest[0]) if rest else None


def build_parser(family: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or only of those of ``family`` (one of COMMAND_MODULES)."""
    parser = _Parser(prog="rsu", description="C-ITS roadside-unit facilities daemon and tools")
    parser.add_argument("--version", action="version", version=f"rsu {__version__}")
    parser.add_argument(
        "--api",
        metavar="URL",
        default=None,
        help="API of the running daemon, for the commands that talk to it "
        "(default: $RSU_API_URL or http://127.0.0.1:8301); also accepted after the command",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES if family is None else (family,):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:
                continue  # a command family not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser(family_of(sys.argv[1:] if argv is None else argv))
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return 2
        return int(args.func(args) or 0)
    except CliError as e:
        print(f"rsu: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
