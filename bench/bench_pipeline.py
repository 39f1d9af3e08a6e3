"""Cost of one signed SPATEM on the send path, against the cost of one ECDSA signature.

    python bench/bench_pipeline.py [--repeat N]

Steps measured (µs, the fastest of ``--repeat`` samples of 50 calls: the least disturbed on a shared
machine): raw ECDSA P-256 sign; UPER encode of the 4-arm SPATEM example
(with and without validation); SecurityService.sign of the PDU (digest signer, a SignRequest with
the content's SSP requirement); GN/BTP packet build + sign (the send pipeline with one secured
GeoNetworking transport); the whole send path (encode + SSP requirement + pipeline: GN build + sign);
the receive path of that SPATEM (parse + verify + decode + SSP check); a bare ECDSA P-256 verify; and
the receive path of the SREM example (bus priority), signed by a digest (the usual case) and by its
certificate (the first message of an AT), as a ratio to that verify (issue 13 goal: ≤ 2×).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, utils  # noqa: E402

from _timing import fastest_us  # noqa: E402

from rsu import catalog  # noqa: E402
from rsu.clock import SystemClock  # noqa: E402
from rsu.codec.facilities import get_codec  # noqa: E402
from rsu.pipeline.send import GnFramer, SendPipeline  # noqa: E402
from rsu.security import ssp  # noqa: E402
from rsu.security.pki import init_pki  # noqa: E402
from rsu.security.pool import AtPool  # noqa: E402
from rsu.security.request import SignRequest  # noqa: E402
from rsu.security.service import SecurityService  # noqa: E402
from rsu.services.model import Transmission  # noqa: E402
from rsu.security.verify import TrustStore, Verifier  # noqa: E402
from rsu.transports import gn  # noqa: E402
from rsu.transports.base import DisseminationParams, GeoArea  # noqa: E402
from rsu.transports.config import GnUdpConfig  # noqa: E402
from rsu.transports.gn_core import GnCore  # noqa: E402


INNER = 50  # calls per timing sample


def fastest(fn, repeat: int, inner: int) -> float:
    return fastest_us(fn, repeat, inner)[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--json", help="also write the figures to this file (bench/run.py reads it)")
    args = ap.parse_args()
    clock = SystemClock()
    codec = get_codec()
    kind = catalog.SPATEM
    _, value = codec.from_jer(json.loads((REPO / "config/examples/spatem-4arm-intersection.json").read_text()), kind)
    pdu = codec.encode(value, kind)
    with tempfile.TemporaryDirectory() as d:
        init_pki(d, now=clock.now())
        trust = TrustStore.from_directory(d)
        security = SecurityService(AtPool.load_directory(Path(d) / "at", clock), Verifier(clock, trust), clock)
        receiver = Verifier(clock, trust)
    requirement = ssp.required(kind, value)
    key = ec.generate_private_key(ec.SECP256R1())
    digest = bytes(32)
    core = GnCore(GnUdpConfig(latitude=44.8376, longitude=-0.5794), clock)
    pipeline = SendPipeline([GnFramer(core)], [core.name], security)
    params = DisseminationParams(kind, destination=GeoArea(44.837592, -0.579431, "circle", 300))

    def transmission(p: bytes, req: ssp.Requirement) -> Transmission:
        return Transmission("tlm", "1", kind, p, params, False, 0, None, clock.now(), 0, req)

    tx = transmission(pdu, requirement)
    frame = pipeline.send(tx, clock.now())[0].frame
    packet = gn.parse_packet(frame[14:])
    receiver.verify(packet.secured, kind, payload_offset=packet.payload_offset)  # learn the certificate

    srem_kind = catalog.SREM
    _, srem_value = codec.from_jer(json.loads((REPO / "config/examples/srem-bus-priority.json").read_text()), srem_kind)
    srem_pdu = codec.encode(srem_value, srem_kind)
    srem_params = DisseminationParams(srem_kind, destination=GeoArea(44.837592, -0.579431, "circle", 300))
    srem_tx = Transmission(
        "tlc",
        "1",
        srem_kind,
        srem_pdu,
        srem_params,
        False,
        0,
        None,
        clock.now(),
        0,
        ssp.required(srem_kind, srem_value),
    )
    srem_frames = [pipeline.send(srem_tx, clock.now())[0].frame for _ in range(2)]  # certificate, then digest
    srem_packets = [gn.parse_packet(f[14:]) for f in srem_frames]
    for p in srem_packets:
        r = receiver.verify(p.secured, srem_kind, payload_offset=p.payload_offset)
        assert r.ok and r.pdu is not None, r.reason
    assert [
        receiver.verify(p.secured, srem_kind, payload_offset=p.payload_offset).signer_form for p in srem_packets
    ] == [
        "certificate",
        "digest",
    ]
    signature = key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    public = key.public_key()

    def srem_receive(frame: bytes):
        def run():
            pk = gn.parse_packet(frame[14:])
            r = receiver.verify(pk.secured, srem_kind, payload_offset=pk.payload_offset)
            assert r.ok

        return run

    def send_path():
        p = codec.encode(value, kind, validate=False)
        pipeline.send(transmission(p, ssp.required(kind, value)), clock.now())

    def receive_path():
        pk = gn.parse_packet(frame[14:])
        r = receiver.verify(pk.secured, kind, payload_offset=pk.payload_offset)
        assert r.ok or r.reason is not None

    rows = [
        (
            "ECDSA P-256 sign (cryptography, prehashed)",
            fastest(lambda: key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256()))), args.repeat, INNER),
        ),
        ("UPER encode, validated (API edge)", fastest(lambda: codec.encode(value, kind), args.repeat, INNER)),
        (
            "UPER encode, not validated (service-made values)",
            fastest(lambda: codec.encode(value, kind, validate=False), args.repeat, INNER),
        ),
        (
            "sign the PDU (SecurityService, SignRequest)",
            fastest(lambda: security.sign(SignRequest(requirement, pdu)), args.repeat, INNER),
        ),
        (
            "GN/BTP build + sign (send pipeline, secured GN transport)",
            fastest(lambda: pipeline.send(tx, clock.now()), args.repeat, INNER),
        ),
        ("send path: encode + GN build + sign", fastest(send_path, args.repeat, INNER)),
        ("receive path: GN parse + verify + decode + SSP check", fastest(receive_path, args.repeat, INNER)),
    ]
    verify_rows = [
        (
            "ECDSA P-256 verify (cryptography, prehashed)",
            fastest(
                lambda: public.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256()))), args.repeat, INNER
            ),
        ),
        (
            "SREM receive, digest signer: GN parse + verify + decode + SSP check",
            fastest(srem_receive(srem_frames[1]), args.repeat, INNER),
        ),
        (
            "SREM receive, certificate signer: GN parse + verify + decode + SSP check",
            fastest(srem_receive(srem_frames[0]), args.repeat, INNER),
        ),
    ]
    ecdsa = rows[0][1]
    print(f"SPATEM 4-arm example: {len(pdu)} bytes UPER, {len(frame)} bytes on the wire (Ethernet + GN + 1609.2)")
    print()
    print("| step | µs | × one ECDSA sign |")
    print("|---|---:|---:|")
    for name, us in rows:
        print(f"| {name} | {us:.0f} | {us / ecdsa:.1f} |")
    print()
    print(f"SREM bus-priority example: {len(srem_pdu)} bytes UPER")
    print()
    print("| step | µs | × one ECDSA verify |")
    print("|---|---:|---:|")
    for name, us in verify_rows:
        print(f"| {name} | {us:.0f} | {us / verify_rows[0][1]:.1f} |")
    if args.json:
        keys = ["sign", "encode_validated", "encode", "sign_pdu", "gn_build_sign", "send_path", "spatem_receive"]
        vkeys = ["verify", "srem_receive_digest", "srem_receive_certificate"]
        figures = {"sign_us": ecdsa, "verify_us": verify_rows[0][1],
                   "us": {k: us for k, (_, us) in zip(keys + vkeys, rows + verify_rows)}}
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
