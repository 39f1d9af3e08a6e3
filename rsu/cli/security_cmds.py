"""``rsu pki init``, ``rsu cert show`` and ``rsu verify``: test PKI, certificate inspection, message verification."""

from __future__ import annotations

import argparse
import sys

from rsu.cli.common import CliError, print_json, read_input_bytes


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pki",
        help="test PKI tooling and the TS 102 941 PKI client",
        description="Test PKI tooling (init: not for production certificates) and the "
        "TS 102 941 PKI client (trust lists, offline requests and responses).",
    )
    pki_sub = p.add_subparsers(dest="pki_command", metavar="SUBCOMMAND", parser_class=type(p))
    p.set_defaults(func=lambda a, _p=p: _missing_subcommand(_p))
    q = pki_sub.add_parser(
        "init",
        help="create a test root, an AA and one AT per service",
        description="Create DIR/root.oer, DIR/aa.oer and DIR/at/<service>.oer (COER certificates) "
        "with PEM private keys (mode 0600). DIR works as --trust directory, DIR/at as the "
        "daemon's AT pool. ATs get every permission of their service unless --ssp restricts it.",
    )
    q.add_argument("dir", metavar="DIR")
    q.add_argument(
        "--key-type", choices=["p256", "brainpoolp256r1"], default="p256", help="ECDSA curve of all keys (default p256)"
    )
    q.add_argument("--at-hours", type=int, default=168, metavar="H", help="AT validity in hours (default 168)")
    q.add_argument(
        "--ats-per-service",
        type=int,
        default=1,
        metavar="N",
        help="ATs per service, each starting half a validity after the previous (default 1)",
    )
    q.add_argument("--start", metavar="ISO8601", help="AT validity start (default: one hour ago)")
    q.add_argument(
        "--provider",
        default="GB:31",
        metavar="CC:ID",
        help="IVI service provider id for the IVI SSP: country (2 letters) and issuer id (default GB:31)",
    )
    q.add_argument(
        "--ssp",
        action="append",
        default=[],
        metavar="SERVICE=PERMS",
        help="restrict an AT's SSP: e.g. ivim=textContainer,iso14823.regulatory, "
        "spatem=intersectionState, srem= (no bits), or mapem=hex:0180. Repeatable",
    )
    q.add_argument(
        "--service",
        action="append",
        default=None,
        metavar="SERVICE",
        help="only create ATs for these services (repeatable; default all)",
    )
    q.add_argument(
        "--its-id",
        metavar="TEXT|hex:HEX",
        help="canonical id of this RSU (default 16 random octets); kept in DIR/identity.json with "
        "the canonical key in DIR/keys (made once, reused by later runs)",
    )
    q.add_argument("--force", action="store_true", help="overwrite an existing PKI in DIR")
    q.set_defaults(func=cmd_pki_init)
    from rsu.cli import pki_cmds  # TS 102 941 client: trust lists, offline requests and responses

    pki_cmds.register(pki_sub, type(p))

    p = sub.add_parser("cert", help="inspect certificates")
    cert_sub = p.add_subparsers(dest="cert_command", metavar="SUBCOMMAND", parser_class=type(p))
    p.set_defaults(func=lambda a, _p=p: _missing_subcommand(_p))
    q = cert_sub.add_parser(
        "show",
        help="print a certificate as JSON",
        description="Print a COER certificate (file, hex or -) as JSON: hashedId8, issuer, "
        "validity, region and appPermissions with each SSP decoded.",
    )
    q.add_argument("file", metavar="FILE")
    q.set_defaults(func=cmd_cert_show)

    p = sub.add_parser(
        "verify",
        help="verify signed messages (any input decode takes)",
        description="Verify the IEEE 1609.2 / TS 103 097 signature of every frame in INPUT and print JSON. "
        "INPUT is what `rsu decode` takes (pcap, Ethernet frame, GeoNetworking packet, 1609.2 "
        "data, facilities PDU; hex, file or -); the layers are found the same way. Per frame: "
        "layers found, message, signer, psid, SSP check, verdict (valid, reason, detail). One "
        "frame prints one object; a pcap prints {frames: [...], summary}. Exit code 0 if every "
        "frame is valid, 1 if any is rejected or unsigned, 2 on bad input. Without --time each "
        "message is judged at its own generationTime (freshness not checked).",
    )
    p.add_argument("file", metavar="INPUT", help="hex string, - for stdin, or a file (binary or hex text)")
    p.add_argument(
        "--trust",
        metavar="DIR",
        help="trust store: directory of root and AA certificates (without it the chain is not checked)",
    )
    p.add_argument(
        "--pki-state",
        metavar="DIR",
        help="also trust what a PKI client applied (its state directory, e.g. "
        "<state_dir>/pki-client: ECTL roots, CTL authorities, CRLs), anchored at --tlm; a chain "
        "to another root is untrusted-root, a revoked AT or issuer revoked",
    )
    p.add_argument("--tlm", metavar="H8", help="HashedId8 of the TLM trusted out of band (with --pki-state)")
    p.add_argument("--time", metavar="ISO8601", help="verify as of this time (e.g. 2019-06-01T00:00:00Z)")
    p.add_argument("--max-age", type=float, default=30.0, metavar="S", help="oldest accepted generationTime, s")
    p.add_argument("--max-future", type=float, default=2.0, metavar="S", help="generationTime tolerance, s")
    p.add_argument(
        "--cert",
        action="append",
        default=[],
        metavar="FILE",
        help="a certificate to know beforehand (for digest-signed messages). Repeatable",
    )
    p.add_argument("--no-content", action="store_true", help="do not decode the payload or check it against the SSP")
    p.set_defaults(func=cmd_verify)


def _pki_trust(args: argparse.Namespace):
    """The trust store a PKI client applied (``--pki-state DIR --tlm H8``)."""
    import re

    from rsu.pki.client import load_trust_store

    if not args.tlm or not re.fullmatch(r"[0-9A-Fa-f]{16}", args.tlm):
        raise CliError("--pki-state needs --tlm H8 (the TLM HashedId8, 16 hex digits)")
    try:
        store, errors = load_trust_store(args.pki_state, (bytes.fromhex(args.tlm),))
    except FileNotFoundError:
        raise CliError(f"{args.pki_state}: no trust.json (not a PKI client state directory?)") from None
    except (OSError, ValueError) as e:
        raise CliError(f"{args.pki_state}/trust.json: unreadable ({type(e).__name__})") from None
    if store.ectl is None:
        raise CliError(
            f"{args.pki_state}: no ECTL signed by TLM {args.tlm} applied"
            + (f" ({'; '.join(errors)})" if errors else "")
        )
    return store


def _missing_subcommand(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def cmd_pki_init(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from rsu.clock import parse_iso8601
    from rsu.security import keys
    from rsu.security.pki import init_pki, parse_provider, parse_ssp_option

    folder = Path(args.dir)
    if (folder / "root.oer").exists() and not args.force:
        raise CliError(f"{folder}: a PKI already exists there (use --force to overwrite)")
    if args.at_hours < 1 or args.at_hours > 65535:
        raise CliError("--at-hours must be 1..65535")
    if args.ats_per_service < 1:
        raise CliError("--ats-per-service must be at least 1")
    try:
        provider = parse_provider(args.provider)
        overrides = {}
        for text in args.ssp:
            kind, ssp = parse_ssp_option(text, provider)
            overrides[kind.name] = ssp
        start = parse_iso8601(args.start).timestamp() if args.start else None
    except (ValueError, KeyError) as e:
        raise CliError(str(e).strip("'\"")) from None
    try:
        manifest = init_pki(
            folder,
            now=time.time(),
            at_hours=args.at_hours,
            ats_per_service=args.ats_per_service,
            key_type=keys.KEY_TYPES[args.key_type],
            provider=provider,
            ssp_overrides=overrides,
            start=start,
            services=args.service,
        )
    except KeyError as e:
        raise CliError(str(e).strip("'\"")) from None
    except OSError as e:
        raise CliError(f"{folder}: {e.strerror or e}") from None
    manifest["canonical"] = _canonical_identity(folder, args.its_id)
    print_json(manifest)
    return 0


def _canonical_identity(folder, its_id_text: str | None) -> dict:
    """The canonical key (DIR/keys, file key store) and id (DIR/identity.json) the EA operator registers."""
    from rsu.pki.errors import PkiError
    from rsu.pki.identity import ensure_identity
    from rsu.pki.keystore import FileKeyStore

    its_id = None
    if its_id_text is not None:
        try:
            its_id = bytes.fromhex(its_id_text[4:]) if its_id_text.startswith("hex:") else its_id_text.encode()
        except ValueError:
            raise CliError(f"--its-id {its_id_text}: not hex after hex:") from None
        if not its_id:
            raise CliError("--its-id: empty")
    try:
        return ensure_identity(FileKeyStore(folder / "keys"), folder, its_id)
    except PkiError as e:
        raise CliError(f"canonical identity: {e}") from None


def cmd_cert_show(args: argparse.Namespace) -> int:
    from rsu.security.certs import Certificate, CertificateError

    data = read_input_bytes(args.file)
    try:
        cert = Certificate.from_bytes(data, source=args.file)
    except CertificateError as e:
        raise CliError(f"{args.file}: {e}") from None
    print_json(cert.summary())
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from rsu.clock import ManualClock, parse_iso8601
    from rsu.dissect import Layer, LayerError, dissect
    from rsu.security.certs import Certificate, CertificateError
    from rsu.security.verify import TrustStore, Verifier

    data = read_input_bytes(args.file)
    trust = None
    if args.trust:
        try:
            trust = TrustStore.from_directory(args.trust)
        except FileNotFoundError as e:
            raise CliError(str(e)) from None
        if not trust.roots:
            raise CliError(f"{args.trust}: no trusted root certificate found")
    pki_trust = None
    if args.pki_state:
        pki_trust, trust = _pki_trust(args), trust if trust is not None else TrustStore()
    at = None
    if args.time:
        try:
            at = parse_iso8601(args.time).timestamp()
        except ValueError:
            raise CliError(f"--time {args.time!r}: not an ISO 8601 date-time") from None
    # one verifier for all frames: a certificate met in one frame is known for the digest-signed ones after it
    clock = ManualClock(0.0)
    verifier = Verifier(
        clock,
        trust,
        max_age=args.max_age,
        max_future=args.max_future,
        check_content=not args.no_content,
        hold_seconds=0,
        pki_trust=(lambda: pki_trust) if pki_trust is not None else None,
    )
    for f in args.cert:
        try:
            verifier.add_certificate(Certificate.load(f))
        except CertificateError as e:
            raise CliError(str(e)) from None
    try:
        layers = dissect(data)  # the same layer detection as rsu decode
    except LayerError as e:
        layers = [Layer("error", {"error": str(e)}, raw=data)]

    if layers[0].name == "pcap":
        frames = []
        for record in layers[0].frames:
            head, rest = record[0], record[1:]
            frames.append(
                {"index": head.fields["index"], "time": head.fields["time"], **verify_frame(rest, verifier, clock, at)}
            )
        valid = sum(1 for f in frames if f["valid"])
        out = {
            "layers": ["pcap"],
            "format": layers[0].fields["format"],
            "frames": frames,
            "summary": {"frames": len(frames), "valid": valid, "rejected": len(frames) - valid},
        }
        ok = bool(frames) and valid == len(frames)
    else:
        out = verify_frame(layers, verifier, clock, at)
        ok = out["valid"]
    out["verifiedAt"] = args.time or "generationTime"
    if trust is not None and trust.rejected:
        out["trustStoreSkipped"] = [f"{src}: {why}" for src, why in trust.rejected]
    print_json(out)
    return 0 if ok else 1


def verify_frame(layers: list, verifier, clock, at: float | None) -> dict:
    """Verify one dissected frame: the first 1609.2 layer, with the message type its BTP port names
    and, for a secured GeoNetworking packet, the facilities PDU found after the signed GN headers."""
    from rsu import catalog
    from rsu.clock import time64_to_posix
    from rsu.dissect import signed_part
    from rsu.security.verify import ParseError, Reason, VerificationResult, parse_signed

    names = [layer.name for layer in layers]
    message = next((layer.fields.get("type") for layer in layers if layer.name == "facilities"), None)
    error = next((layer.fields["error"] for layer in layers if layer.name == "error"), None)
    part = signed_part(layers)
    if part is None:
        reason, detail = (
            (Reason.MALFORMED, error)
            if error
            else (Reason.NOT_SIGNED, "no IEEE 1609.2 data in this frame: it is not signed")
        )
        result = VerificationResult(reason, detail)
    else:
        secured = part.secured
        if at is not None:
            clock.set(at)
        else:
            try:
                clock.set(time64_to_posix(parse_signed(secured).header["generationTime"]))
            except ParseError:
                pass  # the verifier reports why the message cannot be parsed
        result = verifier.verify(secured, part.expected, payload_offset=part.payload_offset)
        if result.pdu is not None:
            message = result.pdu.kind.pdu
        elif message is None and result.psid in catalog.BY_ITS_AID:
            message = catalog.BY_ITS_AID[result.psid].pdu
    out = {"layers": names, "message": message, **result.to_json()}
    if result.reason is Reason.SIGNER_UNKNOWN and result.signer_id is not None:  # offline: nobody to ask
        out["detail"] = (
            f"no certificate known for digest {result.signer_id.hex()}: give it with --cert, or "
            "verify a capture in which an earlier frame carries it"
        )
    if result.reason is Reason.SSP_VIOLATION:
        out["sspCheck"] = "failed"
    elif result.pdu is not None:
        out["sspCheck"] = "passed"
    else:
        out["sspCheck"] = "not-checked"
    return out
