"""``rsu pki trust ...``, ``rsu pki request ...``, ``rsu pki response ...``: the TS 102 941 PKI client, offline.

Registered under the ``pki`` command of :mod:`rsu.cli.security_cmds` (which also holds the
test-PKI ``rsu pki init``).
"""

from __future__ import annotations

import argparse
import sys

from rsu.cli.common import CliError, print_json, read_input_bytes


def register(pki_sub: argparse._SubParsersAction, parser_class: type) -> None:
    p = pki_sub.add_parser("trust", help="TS 102 941 trust lists (ECTL, CTL, CRL)",
                           description="Inspect the trust lists of a real PKI (EU CCMS, national PKIs).")
    trust_sub = p.add_subparsers(dest="trust_command", metavar="SUBCOMMAND", parser_class=parser_class)
    p.set_defaults(func=lambda a, _p=p: _missing_subcommand(_p))
    q = trust_sub.add_parser(
        "show", help="print an ECTL, CTL or CRL as JSON",
        description="Read an ECTL, Root CA CTL or CRL (file, hex or -) and print JSON: kind, sequence, "
                    "nextUpdate, signer HashedId8, whether the signature is valid and the list is valid at "
                    "--now, the root CAs, DC URLs, EA/AA entries or revoked certificates. Exit code 0 if "
                    "valid at --now, 1 if not, 2 on unreadable input.")
    q.add_argument("file", metavar="FILE")
    q.add_argument("--now", metavar="ISO8601", help="judge validity at this time (default: the current time)")
    q.add_argument("--signer", metavar="CERT",
                   help="signer certificate, for a list signed by digest (a CRL, some CTLs)")
    q.set_defaults(func=cmd_trust_show)


def _missing_subcommand(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _parse_now(text: str | None) -> float:
    import time

    from rsu.clock import parse_iso8601

    if text is None:
        return time.time()
    try:
        return parse_iso8601(text).timestamp()
    except ValueError:
        raise CliError(f"--now {text!r}: not an ISO 8601 date-time") from None


def _load_cert(path: str, option: str):
    from rsu.security.certs import Certificate, CertificateError

    try:
        return Certificate.from_bytes(read_input_bytes(path), source=path)
    except CertificateError as e:
        raise CliError(f"{option} {path}: {e}") from None


def cmd_trust_show(args: argparse.Namespace) -> int:
    from rsu.pki import trustlist

    data = read_input_bytes(args.file)
    now = _parse_now(args.now)
    signer = _load_cert(args.signer, "--signer") if args.signer else None
    try:
        tl = trustlist.parse_trust_list(data)
        out = trustlist.describe(tl, now, signer)
    except trustlist.TrustListError as e:
        raise CliError(f"{args.file}: {e}") from None
    print_json(out)
    return 0 if out.get("validAtNow") else 1
