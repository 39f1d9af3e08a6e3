"""``rsu run``: the daemon. Until the service layers land it loads the codec and reports what it carries."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the RSU daemon",
                       description="Run the RSU daemon (embedded default configuration when no --config is given).")
    p.add_argument("--config", metavar="FILE", help="YAML configuration file")
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    import time

    from rsu import __version__, catalog
    from rsu.codec.facilities import get_codec

    started = time.monotonic()
    get_codec()
    took = time.monotonic() - started
    print(f"rsu {__version__}: codec ready in {took * 1000:.0f} ms")
    for kind in catalog.MESSAGES:
        print(f"  {kind.pdu:<7} messageID {kind.message_id:>2}  protocolVersion {kind.protocol_version}  "
              f"service {kind.service}  ITS-AID {kind.its_aid}  BTP port {kind.btp_port}")
    return 0
