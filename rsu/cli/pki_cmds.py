"""``rsu pki trust ...``, ``rsu pki request ...``, ``rsu pki response ...``: the TS 102 941 PKI client, offline.

Registered under the ``pki`` command of :mod:`rsu.cli.security_cmds` (which also holds the
test-PKI ``rsu pki init``).
"""

from __future__ import annotations

import argparse
import sys

from rsu.cli.common import CliError, print_json, read_input_bytes


def register(pki_sub: argparse._SubParsersAction, parser_class: type) -> None:
    p = pki_sub.add_parser(
        "trust",
        help="TS 102 941 trust lists (ECTL, CTL, CRL)",
        description="Inspect the trust lists of a real PKI (EU CCMS, national PKIs).",
    )
    trust_sub = p.add_subparsers(dest="trust_command", metavar="SUBCOMMAND", parser_class=parser_class)
    p.set_defaults(func=lambda a, _p=p: _missing_subcommand(_p))
    q = trust_sub.add_parser(
        "show",
        help="print an ECTL, CTL or CRL as JSON",
        description="Read an ECTL, Root CA CTL or CRL (file, hex or -) and print JSON: kind, sequence, "
        "nextUpdate, signer HashedId8, whether the signature is valid and the list is valid at "
        "--now, the root CAs, DC URLs, EA/AA entries or revoked certificates. Exit code 0 if "
        "valid at --now, 1 if not, 2 on unreadable input.",
    )
    q.add_argument("file", metavar="FILE")
    q.add_argument("--now", metavar="ISO8601", help="judge validity at this time (default: the current time)")
    q.add_argument(
        "--signer", metavar="CERT", help="signer certificate, for a list signed by digest (a CRL, some CTLs)"
    )
    q.add_argument(
        "--anchor",
        metavar="HASHEDID8",
        help="trusted TLM/root HashedId8 (16 hex digits): report whether the signer is that one "
        "(without it the inline signer certificate is only checked for consistency)",
    )
    q.set_defaults(func=cmd_trust_show)

    p = pki_sub.add_parser(
        "request",
        help="write an enrolment or authorization request to a file",
        description="Build a TS 102 941 request and write it instead of sending it (offline "
        "enrolment, debugging). The secrets needed to read the answer go to a "
        "pending-state file (mode 0600, default OUT.pending.json).",
    )
    req_sub = p.add_subparsers(dest="request_command", metavar="SUBCOMMAND", parser_class=parser_class)
    p.set_defaults(func=lambda a, _p=p: _missing_subcommand(_p))
    q = req_sub.add_parser(
        "ec",
        help="enrolment request (initial or re-enrolment) for an EA",
        description="Initial enrolment: --its-id and --canonical-key. Re-enrolment: --ec and "
        "--ec-key (the current EC signs; itsId is its HashedId8).",
    )
    q.add_argument("--ea-cert", required=True, metavar="CERT", help="the EA certificate (COER), with encryption key")
    q.add_argument("--its-id", metavar="ID", help="canonical identifier: text, or hex:... for raw octets")
    q.add_argument("--canonical-key", metavar="KEY", help="canonical private key (PEM, mode 0600)")
    _add_common_request_options(q)
    q.set_defaults(func=cmd_request_ec)
    q = req_sub.add_parser(
        "at",
        help="authorization request for an AA (privacy variant, with PoP)",
        description="Request one AT for the given services (default: every rsu service), "
        "signed with the current EC; the EC signature is encrypted for the EA.",
    )
    q.add_argument("--aa-cert", required=True, metavar="CERT", help="the AA certificate (COER)")
    q.add_argument("--ea-cert", required=True, metavar="CERT", help="the EA that issued the EC")
    q.add_argument(
        "--service",
        action="append",
        default=None,
        metavar="SERVICE",
        help="message type to request (spatem, mapem, ivim, srem, ssem, rtcmem); repeatable",
    )
    q.add_argument("--provider", default="GB:31", metavar="CC:ID", help="IVI service provider for the IVIM SSP")
    _add_common_request_options(q)
    q.set_defaults(func=cmd_request_at)

    q = pki_sub.add_parser(
        "response",
        help="apply an EA/AA answer obtained offline",
        description="Decrypt and check the answer to a request written by 'rsu pki request' and "
        "print JSON (response code, certificate). On ok, --out-cert/--out-key "
        "receive the certificate and its private key (mode 0600). Exit code 0 on "
        "ok, 1 on a non-ok code or a refused answer, 2 on unreadable input.",
    )
    q.add_argument("file", metavar="FILE", help="the answer (binary or hex)")
    q.add_argument("--pending", required=True, metavar="FILE", help="pending-state file of the request")
    q.add_argument("--out-cert", metavar="FILE")
    q.add_argument("--out-key", metavar="FILE")
    q.add_argument("--now", metavar="ISO8601", help="check the certificate's validity at this time")
    q.set_defaults(func=cmd_response)

    from rsu.cli import pki_client_cmds  # enrol, authorize, status, trust update: the client over HTTP

    pki_client_cmds.register(pki_sub, trust_sub)


def _add_common_request_options(q: argparse.ArgumentParser) -> None:
    q.add_argument("--ec", metavar="CERT", help="current enrolment credential (COER)")
    q.add_argument("--ec-key", metavar="KEY", help="its private key (PEM or raw, mode 0600)")
    q.add_argument("--out", required=True, metavar="FILE", help="where to write the encrypted request")
    q.add_argument("--pending", metavar="FILE", help="pending-state file (default OUT.pending.json)")
    q.add_argument("--now", metavar="ISO8601", help="generation time (default: now)")


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
    ok = bool(out.get("validAtNow"))
    if args.anchor:
        out["signerIsAnchor"] = out["signer"]["hashedId8"] == args.anchor.strip().lower()
        ok = ok and out["signerIsAnchor"]
    print_json(out)
    return 0 if ok else 1


def _load_key(path: str, curve_name: str | None, option: str):
    from rsu.security.keys import KeyMaterialError, load_private_key

    try:
        return load_private_key(path, curve_name)
    except KeyMaterialError as e:
        raise CliError(f"{option}: {e}") from None


def _current_ec(args: argparse.Namespace, required: bool):
    if bool(args.ec) != bool(args.ec_key):
        raise CliError("--ec and --ec-key go together")
    if not args.ec:
        if required:
            raise CliError("--ec and --ec-key are required")
        return None, None
    ec_cert = _load_cert(args.ec, "--ec")
    return ec_cert, _load_key(args.ec_key, ec_cert.verification_key[0], "--ec-key")


def _write_request(args: argparse.Namespace, pending) -> int:
    import json
    import os
    from pathlib import Path

    out = Path(args.out)
    state_path = Path(args.pending or f"{args.out}.pending.json")
    try:
        fd = os.open(state_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(pending.to_state(), f)
        out.write_bytes(pending.body)
    except OSError as e:
        raise CliError(f"{e.filename}: {e.strerror or e}") from None
    print_json(
        {
            "kind": pending.kind,
            "out": str(out),
            "pending": str(state_path),
            "bytes": len(pending.body),
            "requestHash": pending.request_hash.hex(),
            "authority": pending.authority.hashed_id8.hex(),
            "appPermissions": [
                {"psid": p["psid"], "ssp": p["ssp"][1].hex() if "ssp" in p else None} for p in pending.requested
            ],
        }
    )
    return 0


def cmd_request_ec(args: argparse.Namespace) -> int:
    from rsu import clock
    from rsu.pki import ecies, requests
    from rsu.pki.errors import PkiError

    ea = _load_cert(args.ea_cert, "--ea-cert")
    ec_cert, ec_key = _current_ec(args, required=False)
    if ec_cert is None:
        if not (args.its_id and args.canonical_key):
            raise CliError("initial enrolment needs --its-id and --canonical-key (or --ec/--ec-key to re-enrol)")
        its_id = bytes.fromhex(args.its_id[4:]) if args.its_id.startswith("hex:") else args.its_id.encode()
        signing_key = _load_key(args.canonical_key, None, "--canonical-key")
    else:
        its_id, signing_key = b"", ec_key
    try:
        pending = requests.build_enrolment_request(
            its_id=its_id,
            signing_key=signing_key,
            ea=ea,
            generation_time=clock.time64(_parse_now(args.now)),
            random=ecies.SystemRandomness(),
            current_ec=ec_cert,
        )
    except PkiError as e:
        raise CliError(str(e)) from None
    return _write_request(args, pending)


def cmd_request_at(args: argparse.Namespace) -> int:
    from rsu import catalog, clock
    from rsu.pki import ecies, requests
    from rsu.pki.errors import PkiError
    from rsu.security.pki import parse_provider

    aa, ea = _load_cert(args.aa_cert, "--aa-cert"), _load_cert(args.ea_cert, "--ea-cert")
    ec_cert, ec_key = _current_ec(args, required=True)
    try:
        provider = parse_provider(args.provider)
        permissions = requests.service_permissions(args.service or [k.name for k in catalog.MESSAGES], provider)
        pending = requests.build_authorization_request(
            ec=ec_cert,
            ec_key=ec_key,
            ea=ea,
            aa=aa,
            permissions=permissions,
            generation_time=clock.time64(_parse_now(args.now)),
            random=ecies.SystemRandomness(),
        )
    except (KeyError, ValueError) as e:
        raise CliError(str(e).strip("'\"")) from None
    except PkiError as e:
        raise CliError(str(e)) from None
    return _write_request(args, pending)


def cmd_response(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric import ec

    from rsu.cli.common import load_json
    from rsu.pki import requests
    from rsu.pki.errors import PkiError
    from rsu.security.keys import write_private_key

    try:
        pending = requests.PendingRequest.from_state(load_json(args.pending))
    except PkiError as e:
        raise CliError(f"--pending {args.pending}: {e}") from None
    data = read_input_bytes(args.file)
    now = _parse_now(args.now)
    try:
        response = requests.process_response(pending, data, now)
    except requests.ResponseError as e:
        print_json({"kind": pending.kind, "ok": False, "refused": e.reason, "detail": e.detail})
        return 1
    out = {"kind": pending.kind, "ok": response.ok, "code": response.code}
    if response.ok:
        cert, key = response.certificate, response.private_key
        if cert is None or not isinstance(key, ec.EllipticCurvePrivateKey):  # never: an ok answer to a saved request
            raise CliError("the response has no certificate, or its key is not a key file's")
        out["certificate"] = cert.summary()
        try:
            if args.out_cert:
                Path(args.out_cert).write_bytes(cert.raw)
            if args.out_key:
                write_private_key(args.out_key, key)
        except OSError as e:
            raise CliError(f"{e.filename}: {e.strerror or e}") from None
    print_json(out)
    return 0 if response.ok else 1
