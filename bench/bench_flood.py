"""A flood of frames from distinct random signers against a daemon running in this process.

    python bench/bench_flood.py [--frames 100000] [--valid-every 100]

Each flood frame is a valid, fresh, decodable SPATEM signed by a digest nobody knows (one signature
reused with random HashedId8s: such a signer is never verified, only held and asked about). Before
issue 11 every one of them added a pending certificate request (198,805 after 200,000 frames) and
our outgoing frames carried them. Printed: RSS growth across the flood (after a warm-up that fills
every bounded table), the share of valid frames sent during the flood that were accepted, the most
certificate requests one outgoing frame carried, and the receive cost of one flood frame as a ratio
to one ECDSA P-256 verification measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, utils  # noqa: E402

from _timing import median_us  # noqa: E402

from rsu.clock import ManualClock  # noqa: E402
from tests.ops.rxharness import Neighbour, flood, running_daemon  # noqa: E402


async def run(frames: int, valid_every: int) -> dict:
    clock = ManualClock(time.time())
    with tempfile.TemporaryDirectory() as tmp:
        async with running_daemon(Path(tmp) / "state", clock) as d:
            t0 = time.perf_counter()
            r = flood(d, Neighbour(d.config.pki_path, clock), clock, frames, valid_every=valid_every)
            r["seconds"] = time.perf_counter() - t0
            r["limits"] = d.config.security.limits.model_dump()
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--valid-every", type=int, default=100)
    args = ap.parse_args()
    key = ec.generate_private_key(ec.SECP256R1())
    digest = bytes(32)
    signature = key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    public = key.public_key()
    verify_us = median_us(lambda: public.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256()))), 30)
    r = asyncio.run(run(args.frames, args.valid_every))
    per_frame_us = r["seconds"] / (r["frames"] * (1 + 1 / args.valid_every)) * 1e6
    print(f"flood frames                      {r['frames']}")
    print(f"RSS growth across the flood       {r['rss_growth_bytes'] / 1e6:.2f} MB")
    print(f"valid frames accepted             {r['valid_accepted']:.0f} / {r['valid_sent']} "
          f"({r['valid_accepted'] / max(1, r['valid_sent']):.1%})")
    print(f"most requests in one outgoing frame {r['max_inline_requests']} (cap {r['limits']['p2pcd_per_frame']})")
    print(f"pending requests / held frames    {r['pending_requests']} / {r['held']}")
    print(f"receive cost per frame            {per_frame_us / verify_us:.2f} x one ECDSA P-256 verify "
          f"({verify_us:.0f} us here)")
    print(json.dumps({k: v for k, v in r.items() if k != "limits"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
