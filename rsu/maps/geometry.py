"""The geometry of an intersection of a MAPEM, in local metres east/north of its reference point.

Takes the JER JSON of a MAPEM (what rsu's MAP files hold; :func:`load_pdu` also takes UPER bytes,
hex, or the output of ``rsu decode``) and gives :class:`Intersection` objects: plain data a
renderer or an exporter reads, nothing drawn here.

Node offsets (ISO TS 19091 NodeOffsetPointXY): node-XY1..6 are x (east) / y (north) offsets in cm,
**the first node from the reference point, every later node from the previous node** (the ASN.1
comment on NodeOffsetPointXY); node-LatLon is an absolute position (0.1 microdegree), converted with
:class:`LocalPlane`. A computed lane (ComputedLane) is its reference lane's centre line, scaled
(``scaleXaxis``/``scaleYaxis``, 0.05 % steps) and rotated (``rotateXY``, 0.0125 degree steps,
clockwise as a heading) about that lane's first node, then shifted by ``offsetXaxis``/``offsetYaxis``
(cm).

Widths: a lane starts at the intersection's ``laneWidth`` (300 cm when the MAP gives none, see
:data:`DEFAULT_LANE_WIDTH_CM`); a node's ``dWidth`` adds to the width from that node onwards (the
width tapers linearly between nodes).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

# WGS84 ellipsoid
WGS84_A = 6378137.0
WGS84_E2 = 6.69437999014e-3

DEFAULT_LANE_WIDTH_CM = 300

# NodeOffsetPointXY alternatives with an x/y offset in cm, smallest first, and the range of each coordinate
NODE_XY_RANGES: tuple[tuple[str, int, int], ...] = (
    ("node-XY1", -512, 511),
    ("node-XY2", -1024, 1023),
    ("node-XY3", -2048, 2047),
    ("node-XY4", -4096, 4095),
    ("node-XY5", -8192, 8191),
    ("node-XY6", -32768, 32767),
)
_XY_CHOICES = {name for name, _, _ in NODE_XY_RANGES}

# LaneDirection bits (BIT STRING SIZE(2); bit 0 is the most significant bit of the first octet)
_INGRESS, _EGRESS = 0x80, 0x40

# Lane types whose traffic stops at a stop line at the first node of an ingress lane
STOPPING_TYPES = frozenset({"vehicle", "bikeLane", "trackedVehicle"})


class MapError(ValueError):
    """A MAPEM (or its source) this module cannot use; ``problems`` lists every reason at once."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


class LocalPlane:
    """Local tangent plane at a WGS84 point: degrees <-> metres east/north.

    East/north scale with the prime-vertical and meridian radii of curvature at the origin's
    latitude (a linear approximation: well under a centimetre over the few hundred metres a MAP
    covers at mid latitudes). :meth:`to_local` and :meth:`to_wgs84` are exact inverses of each
    other (up to floating point), which keeps a GeoJSON round trip stable to the centimetre.
    """

    def __init__(self, lat_deg: float, lon_deg: float) -> None:
        self.lat0, self.lon0 = lat_deg, lon_deg
        phi = math.radians(lat_deg)
        w = math.sqrt(1.0 - WGS84_E2 * math.sin(phi) ** 2)
        self.m_per_rad_north = WGS84_A * (1.0 - WGS84_E2) / w**3
        self.m_per_rad_east = WGS84_A / w * max(math.cos(phi), 1e-9)  # no division by zero at a pole

    def to_local(self, lat_deg: float, lon_deg: float) -> tuple[float, float]:
        """(east, north) in metres of a WGS84 position."""
        return (
            math.radians(lon_deg - self.lon0) * self.m_per_rad_east,
            math.radians(lat_deg - self.lat0) * self.m_per_rad_north,
        )

    def to_wgs84(self, east: float, north: float) -> tuple[float, float]:
        """(lat, lon) in degrees of a local position in metres."""
        return (
            self.lat0 + math.degrees(north / self.m_per_rad_north),
            self.lon0 + math.degrees(east / self.m_per_rad_east),
        )


@dataclass(frozen=True)
class Connection:
    """One ``connectsTo`` entry of a lane."""

    index: int  # position in the lane's connectsTo list
    lane: int  # connectingLane.lane
    signal_group: int | None = None
    connection_id: int | None = None
    maneuver: str | None = None  # JER hex of AllowedManeuvers
    remote: dict | None = None  # remoteIntersection (IntersectionReferenceID), None for this intersection
    user_class: int | None = None


@dataclass
class Lane:
    """One GenericLane: centre line in metres, widths in cm per node, and what the MAP says of it."""

    lane_id: int
    type: str  # LaneTypeAttributes alternative: vehicle, crosswalk, bikeLane, ...
    direction: str  # ingress | egress | both | none (LaneDirection)
    points: list[tuple[float, float]]  # (east, north) metres from the reference point
    offsets_cm: list[tuple[int, int]]  # the same nodes in whole cm from the reference point (XY lanes)
    widths_cm: list[int]  # per node
    connections: list[Connection] = field(default_factory=list)
    stop_line_nodes: list[int] = field(default_factory=list)  # nodes carrying the stopLine attribute
    computed_from: int | None = None
    raw: dict = field(default_factory=dict)  # the JER JSON of the GenericLane

    # what the MAP says of the lane besides its geometry (JER values; None when absent)
    @property
    def name(self) -> str | None:
        return self.raw.get("name")

    @property
    def ingress_approach(self) -> int | None:
        return self.raw.get("ingressApproach")

    @property
    def egress_approach(self) -> int | None:
        return self.raw.get("egressApproach")

    @property
    def maneuvers(self) -> str | None:
        """JER hex of AllowedManeuvers."""
        return self.raw.get("maneuvers")

    @property
    def shared_with(self) -> str:
        """JER hex of LaneSharing."""
        return self.raw["laneAttributes"]["sharedWith"]

    @property
    def type_attributes(self) -> str:
        """JER hex of the lane type's attribute bits (LaneAttributes-Vehicle, -Crosswalk, ...)."""
        return self.raw["laneAttributes"]["laneType"][self.type]

    @property
    def ingress(self) -> bool:
        return self.direction in ("ingress", "both")

    @property
    def egress(self) -> bool:
        return self.direction in ("egress", "both")

    @property
    def signal_groups(self) -> list[int]:
        """Distinct signal groups of the lane's connections, in order of appearance."""
        out: list[int] = []
        for c in self.connections:
            if c.signal_group is not None and c.signal_group not in out:
                out.append(c.signal_group)
        return out

    @property
    def stop_lines(self) -> list[int]:
        """Nodes where a stop line is drawn: the first node of an ingress lane of a stopping type
        (vehicle, bikeLane, trackedVehicle), and every node carrying the ``stopLine`` attribute."""
        nodes = set(self.stop_line_nodes)
        if self.ingress and self.type in STOPPING_TYPES:
            nodes.add(0)
        return sorted(nodes)


@dataclass
class Intersection:
    """One IntersectionGeometry in local metres."""

    id: int
    region: int | None
    name: str | None
    revision: int
    ref_lat: float  # degrees
    ref_lon: float  # degrees
    elevation_dm: int | None
    lane_width_cm: int | None  # laneWidth as given (None: absent)
    lanes: list[Lane]
    raw: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.region}.{self.id}" if self.region is not None else str(self.id)

    def lane(self, lane_id: int) -> Lane | None:
        return next((lane for lane in self.lanes if lane.lane_id == lane_id), None)

    @property
    def plane(self) -> LocalPlane:
        return LocalPlane(self.ref_lat, self.ref_lon)


# --- loading ---------------------------------------------------------------------------------------


def load_pdu(data: bytes | str | dict, kind_name: str) -> dict:
    """The JER JSON of a whole ``kind_name`` PDU ("mapem"/"spatem") from what a user may hold.

    ``data``: a JER JSON object (a MAP file: the header may be left out), JSON text of it or of
    ``rsu decode``'s layer list, UPER bytes, or hex text of them. Raises :class:`MapError`.
    """
    from rsu import catalog
    from rsu.codec.errors import CodecError
    from rsu.codec.facilities import get_codec

    kind = catalog.by_name(kind_name)
    codec = get_codec()
    obj: Any = data if isinstance(data, dict) else None
    raw = data.encode() if isinstance(data, str) else data
    if obj is None and isinstance(raw, bytes):
        try:
            obj = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            obj = None
        if obj is not None and not isinstance(obj, dict):
            raise MapError([f"JSON input is a {type(obj).__name__}, not the JER JSON of a {kind.pdu}"])
    if isinstance(obj, dict):
        if isinstance(obj.get("layers"), list):  # rsu decode of a wrapped frame
            pdus = [layer["pdu"] for layer in obj["layers"] if isinstance(layer, dict) and "pdu" in layer]
            if not pdus:
                raise MapError([f"the decoded layers hold no facilities PDU (no {kind.pdu})"])
            obj = pdus[-1]
        if kind.body not in obj:
            raise MapError([f"not the JER JSON of a {kind.pdu} (an object with {kind.body!r})"])
        obj = dict(obj)
        if not isinstance(obj.get("header") or {}, dict):
            raise MapError([f"header: expected an object, found {type(obj['header']).__name__}"])
        header = dict(obj.get("header") or {})
        header.setdefault("protocolVersion", kind.protocol_version)
        header.setdefault("messageID", kind.message_id)
        header.setdefault("stationID", 0)
        obj["header"] = header
        try:
            _, value = codec.from_jer(obj, kind)
        except CodecError as e:
            raise MapError([str(e)]) from None
        return codec.to_jer(kind, value)
    try:
        decoded = codec.decode(_unhex(bytes(raw)))
    except CodecError as e:
        raise MapError([f"neither JSON nor a UPER {kind.pdu}: {e}"]) from None
    if decoded.kind is not kind:
        raise MapError([f"a {decoded.kind.pdu}, not a {kind.pdu}"])
    return codec.to_jer(kind, decoded.value)


def _unhex(data: bytes) -> bytes:
    """The bytes spelled by hex text (whitespace and colons allowed), or ``data`` as it is."""
    text = re.sub(rb"[\s:]", b"", data)
    if text and re.fullmatch(rb"(?:[0-9a-fA-F]{2})+", text):
        return bytes.fromhex(text.decode())
    return data


def intersections(mapem: dict) -> list[Intersection]:
    """Every IntersectionGeometry of a MAPEM's JER JSON; raises :class:`MapError` listing every
    lane that cannot be placed (regional node offsets, a missing or circular reference lane)."""
    problems: list[str] = []
    out = []
    for i, el in enumerate(mapem.get("map", {}).get("intersections") or []):
        out.append(_intersection(el, f"map.intersections[{i}]", problems))
    if problems:
        raise MapError(problems)
    return out


def select(mapem: dict, wanted: str | None) -> Intersection:
    """The intersection ``wanted`` ("1201" or "7.1201"), or the only one when ``wanted`` is None."""
    found = intersections(mapem)
    if not found:
        raise MapError(["the MAPEM has no intersection (road segments are not drawn)"])
    if wanted is None:
        if len(found) > 1:
            raise MapError(
                [(f"the MAPEM has {len(found)} intersections ({', '.join(x.key for x in found)}): choose one")]
            )
        return found[0]
    for x in found:
        if wanted in (x.key, str(x.id)):
            return x
    raise MapError([f"no intersection {wanted!r} in the MAPEM (it has {', '.join(x.key for x in found)})"])


def direction_of(directional_use: str) -> str:
    """ingress | egress | both | none from the JER hex of a LaneDirection."""
    bits = int(directional_use[:2] or "0", 16)
    ingress, egress = bool(bits & _INGRESS), bool(bits & _EGRESS)
    return "both" if ingress and egress else "ingress" if ingress else "egress" if egress else "none"


def directional_use(direction: str) -> str:
    """The JER hex of a LaneDirection for ingress | egress | both | none."""
    return {"ingress": "80", "egress": "40", "both": "c0", "none": "00"}[direction]


def node_xy(x_cm: int, y_cm: int) -> dict | None:
    """The smallest node-XY alternative holding (x, y) cm as JER JSON, None if even node-XY6 cannot."""
    for name, lo, hi in NODE_XY_RANGES:
        if lo <= x_cm <= hi and lo <= y_cm <= hi:
            return {name: {"x": x_cm, "y": y_cm}}
    return None


def _intersection(el: dict, path: str, problems: list[str]) -> Intersection:
    ref = el["refPoint"]
    ref_lat, ref_lon = ref["lat"] / 1e7, ref["long"] / 1e7
    plane = LocalPlane(ref_lat, ref_lon)
    base_width = el.get("laneWidth", DEFAULT_LANE_WIDTH_CM)
    lanes: list[Lane] = []
    computed: list[tuple[int, dict, str]] = []
    for j, raw in enumerate(el.get("laneSet") or []):
        lpath = f"{path}.laneSet[{j}] (lane {raw['laneID']})"
        node_list = raw["nodeList"]
        attrs = raw["laneAttributes"]
        lane = Lane(
            lane_id=raw["laneID"],
            type=next(iter(attrs["laneType"])),
            direction=direction_of(attrs["directionalUse"]),
            points=[],
            offsets_cm=[],
            widths_cm=[],
            connections=_connections(raw),
            raw=raw,
        )
        lanes.append(lane)
        if "nodes" in node_list:
            _place_nodes(lane, node_list["nodes"], plane, base_width, lpath, problems)
        elif "computed" in node_list:
            computed.append((len(lanes) - 1, node_list["computed"], lpath))
        else:
            problems.append(f"{lpath}.nodeList: an alternative this build cannot draw")
    by_id = {lane.lane_id: lane for lane in lanes}
    pending = list(computed)
    while pending:  # computed lanes may (against the standard's advice) refer to computed lanes
        progressed = False
        for item in list(pending):
            index, spec, lpath = item
            reference = by_id.get(spec["referenceLaneId"])
            if reference is None:
                problems.append(
                    f"{lpath}.nodeList.computed.referenceLaneId: lane {spec['referenceLaneId']} "
                    "is not in the intersection"
                )
                pending.remove(item)
                continue
            if not reference.points:
                continue  # not placed yet
            _place_computed(lanes[index], reference, spec, base_width)
            pending.remove(item)
            progressed = True
        if pending and not progressed:
            for _, _, lpath in pending:
                problems.append(
                    f"{lpath}.nodeList.computed: its reference lane has no geometry "
                    "(a circle of computed lanes, or a lane that could not be placed)"
                )
            break
    return Intersection(
        id=el["id"]["id"],
        region=el["id"].get("region"),
        name=el.get("name"),
        revision=el["revision"],
        ref_lat=ref_lat,
        ref_lon=ref_lon,
        elevation_dm=ref.get("elevation"),
        lane_width_cm=el.get("laneWidth"),
        lanes=lanes,
        raw=el,
    )


def _connections(raw: dict) -> list[Connection]:
    out = []
    for k, c in enumerate(raw.get("connectsTo") or []):
        out.append(
            Connection(
                index=k,
                lane=c["connectingLane"]["lane"],
                signal_group=c.get("signalGroup"),
                connection_id=c.get("connectionID"),
                maneuver=c["connectingLane"].get("maneuver"),
                remote=c.get("remoteIntersection"),
                user_class=c.get("userClass"),
            )
        )
    return out


def _place_nodes(
    lane: Lane, nodes: list[dict], plane: LocalPlane, base_width: int, path: str, problems: list[str]
) -> None:
    x_cm = y_cm = 0.0  # position of the previous node (the reference point before the first)
    width = base_width
    for n, node in enumerate(nodes):
        ((choice, delta),) = node["delta"].items()
        if choice in _XY_CHOICES:
            x_cm += delta["x"]
            y_cm += delta["y"]
        elif choice == "node-LatLon":
            east, north = plane.to_local(delta["lat"] / 1e7, delta["lon"] / 1e7)
            x_cm, y_cm = east * 100.0, north * 100.0
        else:
            problems.append(f"{path}.nodeList.nodes[{n}].delta: {choice} node offsets cannot be placed")
            lane.points.clear()
            return
        attributes = node.get("attributes") or {}
        width += attributes.get("dWidth", 0)
        if "stopLine" in (attributes.get("localNode") or []):
            lane.stop_line_nodes.append(n)
        lane.offsets_cm.append((round(x_cm), round(y_cm)))
        lane.points.append((x_cm / 100.0, y_cm / 100.0))
        lane.widths_cm.append(width)


def _computed_offset(axis: dict) -> int:
    ((_, value),) = axis.items()
    return value


def _place_computed(lane: Lane, reference: Lane, spec: dict, base_width: int) -> None:
    x0, y0 = reference.points[0]
    sx = 1.0 + spec.get("scaleXaxis", 0) * 0.0005
    sy = 1.0 + spec.get("scaleYaxis", 0) * 0.0005
    angle = math.radians(spec.get("rotateXY", 0) * 0.0125)
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    dx = _computed_offset(spec["offsetXaxis"]) / 100.0
    dy = _computed_offset(spec["offsetYaxis"]) / 100.0
    for x, y in reference.points:
        u, v = (x - x0) * sx, (y - y0) * sy
        # clockwise rotation (a heading), about the reference lane's first node
        px, py = x0 + u * cos_a + v * sin_a + dx, y0 - u * sin_a + v * cos_a + dy
        lane.points.append((px, py))
        lane.offsets_cm.append((round(px * 100), round(py * 100)))
    lane.widths_cm = [base_width] * len(lane.points)
    lane.computed_from = reference.lane_id
