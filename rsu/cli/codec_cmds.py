"""``rsu encode`` and ``rsu decode``: facilities PDUs between JER JSON and UPER bytes (decode also peels outer layers)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rsu import catalog
from rsu.cli.common import CliError, load_json, print_json, read_input_bytes


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "encode",
        help="encode a PDU from JER JSON to UPER (prints hex)",
        description="Encode the JER JSON of a whole PDU (ItsPduHeader + body) to UPER. "
        "Prints the hex of the encoding, or writes binary with --out.",
    )
    p.add_argument(
        "type",
        metavar="TYPE",
        type=str.lower,
        choices=[m.name for m in catalog.MESSAGES],
        help="one of: " + ", ".join(m.name for m in catalog.MESSAGES),
    )
    p.add_argument("file", metavar="FILE", help="JER JSON file, or - for stdin")
    p.add_argument("--out", metavar="FILE", help="write the binary encoding to FILE instead of printing hex")
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser(
        "decode",
        help="decode bytes, layer by layer, to JSON",
        description="Decode INPUT and print JSON. Layers are detected automatically "
        "(pcap, Ethernet, GeoNetworking, 1609.2 secured data, facilities PDU). "
        "A bare facilities PDU prints as its JER JSON; anything wrapped prints "
        "as a list of layers.",
    )
    p.add_argument("input", metavar="INPUT", help="hex string, - for stdin, or a file (binary or hex text)")
    p.add_argument("--pdu", action="store_true", help="print only the innermost facilities PDU's JER JSON")
    p.set_defaults(func=cmd_decode)


def cmd_encode(args: argparse.Namespace) -> int:
    from rsu.codec.errors import CodecError
    from rsu.codec.facilities import get_codec

    kind = catalog.by_name(args.type)
    obj = load_json(args.file)
    codec = get_codec()
    try:
        _, value = codec.from_jer(obj, kind)
        data = codec.encode(value, kind, validate=False)  # from_jer has validated every field
    except CodecError as e:
        raise CliError(str(e)) from None
    if args.out:
        try:
            Path(args.out).write_bytes(data)
        except OSError as e:
            raise CliError(f"{args.out}: {e.strerror or e}") from None
    else:
        sys.stdout.write(data.hex() + "\n")
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    from rsu.dissect import LayerError, dissect, to_json

    data = read_input_bytes(args.input)
    try:
        layers = dissect(data)
    except LayerError as e:
        raise CliError(str(e)) from None
    innermost = layers[-1]
    if args.pdu:
        if innermost.name != "facilities":
            raise CliError(f"no facilities PDU inside (innermost layer: {innermost.name})")
        print_json(innermost.fields["pdu"])
    elif len(layers) == 1 and innermost.name == "facilities":
        print_json(innermost.fields["pdu"])
    else:
        print_json({"layers": to_json(layers)})
    return 0
