"""``rsu map render | import | export``: look at a MAP (SVG) and edit it in a GIS tool (GeoJSON).

Offline commands: they read and write files only (:mod:`rsu.maps`), never the daemon.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from rsu.cli.common import CliError, load_json, read_input_bytes


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "map",
        help="draw a MAP as SVG; MAP files to and from GeoJSON",
        description="Draw an intersection of a MAPEM as SVG, and convert rsu's MAP files "
        "(JER JSON MAPEM) to and from GeoJSON (WGS84 lon/lat) for GIS tools such as QGIS.",
    )
    cmds = p.add_subparsers(dest="map_command", metavar="ACTION")

    q = cmds.add_parser(
        "render",
        help="draw an intersection as SVG",
        description="Draw an intersection (lanes with widths and directions, lane ids, connections, "
        "signal groups, stop lines) as SVG in metres east/north of its reference point. "
        "INPUT: a MAP file (JER JSON), `rsu decode` output, UPER bytes or their hex.",
    )
    _mapem_arguments(q, "INPUT", "the SVG")
    q.add_argument(
        "--spat",
        metavar="SPATEM",
        help="colour connections, stop lines and signal groups by this SPATEM's current states (JSON, UPER or hex)",
    )
    q.set_defaults(func=cmd_render)

    q = cmds.add_parser(
        "export",
        help="write a MAP file as GeoJSON",
        description="Write one intersection of a MAP file as GeoJSON: the reference point as a "
        "Point, each lane as a LineString with its properties (docs/maps.md).",
    )
    _mapem_arguments(q, "MAPFILE", "the GeoJSON")
    q.set_defaults(func=cmd_export)

    q = cmds.add_parser(
        "import",
        help="make a MAP file from GeoJSON",
        description="Make a MAP file (JER JSON MAPEM) from GeoJSON: positions become node offsets "
        "in cm; every problem is reported at once, naming its feature and property, "
        "and nothing is written unless all is well.",
    )
    q.add_argument("input", metavar="FILE", help="GeoJSON FeatureCollection, or - for stdin")
    q.add_argument("--out", metavar="MAPFILE", help="write the MAP file to MAPFILE (default: standard output)")
    q.set_defaults(func=cmd_import)
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])


def _mapem_arguments(q: argparse.ArgumentParser, metavar: str, what: str) -> None:
    q.add_argument("input", metavar=metavar, help="MAPEM: a MAP file, UPER/hex file, hex string, or - for stdin")
    q.add_argument("--out", metavar="FILE", help=f"write {what} to FILE (default: standard output)")
    q.add_argument(
        "--intersection", metavar="ID", help='the intersection ("1201" or "7.1201") when the MAPEM has several'
    )


def _write(out: str | None, text: str) -> None:
    """Write ``text`` to ``out`` whole or not at all (temporary file, then rename); stdout without ``out``."""
    if not out or out == "-":
        sys.stdout.write(text)
        return
    target = Path(out)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or Path("."))
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, target)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as e:
        raise CliError(f"{out}: {e.strerror or e}") from None


def _mapem(source: str) -> dict:
    from rsu.maps.geometry import MapError, load_pdu

    try:
        return load_pdu(read_input_bytes(source), "mapem")
    except MapError as e:
        raise CliError(f"{source}: {e}") from None


def cmd_render(args: argparse.Namespace) -> int:
    from rsu.maps.geometry import MapError, load_pdu, select
    from rsu.maps.svg import render, signal_states

    mapem = _mapem(args.input)
    try:
        x = select(mapem, args.intersection)
    except MapError as e:
        raise CliError(f"{args.input}: {e}") from None
    states = None
    if args.spat:
        try:
            states = signal_states(load_pdu(read_input_bytes(args.spat), "spatem"), x)
        except (MapError, ValueError) as e:
            raise CliError(f"{args.spat}: {e}") from None
    _write(args.out, render(x, states))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from rsu.maps.geojson import from_map
    from rsu.maps.geometry import MapError

    mapem = _mapem(args.input)
    try:
        doc, warnings = from_map(mapem, args.intersection)
    except MapError as e:
        raise CliError(f"{args.input}: {e}") from None
    for w in warnings:
        print(f"rsu: note: {w}", file=sys.stderr)
    _write(args.out, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from rsu.maps.geojson import to_map
    from rsu.maps.geometry import MapError

    doc = load_json(args.input)
    try:
        mapem = to_map(doc)
    except MapError as e:
        print(f"{args.input}: {len(e.problems)} error(s); nothing written", file=sys.stderr)
        for problem in e.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    _write(args.out, json.dumps(mapem, indent=2, ensure_ascii=False) + "\n")
    return 0
