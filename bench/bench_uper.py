"""UPER encode/decode per message: the generated codec against asn1tools, as multiples of one ECDSA sign.

    python bench/bench_uper.py [--repeat N]

For each shipped example (config/examples/*.json): µs (median) for FacilitiesCodec.encode and
.decode without validation (the service path: values made by the service, bytes we made), once
with the generated codec (``uper="generated"``) and once with asn1tools (``uper="asn1tools"``),
and each as a multiple of one bare ECDSA P-256 sign measured in the same run (issue 13 goal: a
SPATEM encode within 25 µs and decode within 30 µs, i.e. about 1.2x and 1.4x one sign of 21.5 µs).
One core, one process.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _timing import median_us  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, utils  # noqa: E402

from rsu import catalog  # noqa: E402
from rsu.codec.facilities import FacilitiesCodec  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--json", help="also write the figures to this file (bench/run.py reads it)")
    args = ap.parse_args()
    gen, ref = FacilitiesCodec(uper="generated"), FacilitiesCodec(uper="asn1tools")
    if gen.uper != "generated":
        print("the generated codec is not in use (modules differ from the ones it was generated from)")
        return 1
    key = ec.generate_private_key(ec.SECP256R1())
    digest = b"\x5a" * 32
    algorithm = ec.ECDSA(utils.Prehashed(hashes.SHA256()))

    def sign_us() -> float:
        return median_us(lambda: key.sign(digest, algorithm), args.repeat)

    signs = [sign_us()]
    rows = []
    for path in sorted((REPO / "config" / "examples").glob("*.json")):
        kind = catalog.by_name(path.name.split("-")[0])
        _, value = gen.from_jer(json.loads(path.read_text()), kind)
        data = gen.encode(value, kind)
        assert data == ref.encode(value, kind) and gen.decode(data).value == ref.decode(data).value
        rows.append((path.name, len(data), [
            median_us(lambda c=c: c.encode(value, kind, validate=False), args.repeat)
            for c in (gen, ref)
        ] + [
            median_us(lambda c=c: c.decode(data, validate=False), args.repeat)
            for c in (gen, ref)
        ]))
        signs.append(sign_us())
    sign = sorted(signs)[len(signs) // 2]
    print(f"one ECDSA P-256 sign (cryptography, prehashed): {sign:.1f} µs (median of {len(signs)} runs "
          f"between the rows, {min(signs):.1f}..{max(signs):.1f})")
    print()
    print("| example | UPER bytes | encode µs generated | × sign | encode µs asn1tools | × sign "
          "| decode µs generated | × sign | decode µs asn1tools | × sign | encode / decode speed-up |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, size, (eg, ea, dg, da) in rows:
        print(f"| {name} | {size} | {eg:.1f} | {eg / sign:.2f} | {ea:.0f} | {ea / sign:.1f} "
              f"| {dg:.1f} | {dg / sign:.2f} | {da:.0f} | {da / sign:.1f} | {ea / eg:.1f}x / {da / dg:.1f}x |")
    if args.json:
        figures = {"sign_us": sign, "examples": {
            name.removesuffix(".json"): {"bytes": size, "encode_generated_us": eg, "encode_asn1tools_us": ea,
                                         "decode_generated_us": dg, "decode_asn1tools_us": da}
            for name, size, (eg, ea, dg, da) in rows}}
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
