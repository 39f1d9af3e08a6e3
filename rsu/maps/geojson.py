"""A MAP file (JER JSON MAPEM, one intersection) to GeoJSON and back, so a MAP can be drawn in a GIS tool.

Layer: JER JSON in, GeoJSON (RFC 7946: WGS84 ``[lon, lat]``) out, and the reverse; no I/O.

The GeoJSON is a FeatureCollection of:

* one **Point**, the intersection's reference point (``[lon, lat]``, or ``[lon, lat, metres]`` with
  an elevation), properties: ``intersection_id`` (0..65535, required), ``region``, ``name``,
  ``revision`` (0..127, default 0), ``lane_width`` (cm, the intersection's default lane width),
  ``station_id`` (the MAPEM header's; without it the MAP file has no header, and the daemon puts
  its own station id), ``speed_limits`` (the JER of SpeedLimitList);
* one **LineString** per lane, its centre line from the first node (at the stop line of an
  ingress lane) outwards, properties: ``lane_id`` (0..255, unique, required), ``name``, ``type``
  (a LaneTypeAttributes alternative, default ``vehicle``), ``type_attributes`` (JER hex of its
  bits), ``direction`` (``ingress``, ``egress``, ``both`` or ``none``, required), ``shared_with``
  (JER hex of LaneSharing), ``ingress_approach``/``egress_approach`` (0..15), ``maneuvers`` (JER hex
  of AllowedManeuvers), ``width`` (cm at the first node; default ``lane_width``), ``widths`` (cm per
  node, when the width changes along the lane), ``signal_group`` (0..255: of every connection that
  gives none), ``connections`` (a list of lane ids, or of objects ``{"lane", "signal_group",
  "connection_id", "maneuver", "remote_intersection", "user_class"}``; also ``"9,12"``),
  ``stop_line_nodes`` (indexes of nodes carrying the ``stopLine`` attribute), ``overlays``.

Import (:func:`to_map`) converts each position with the reference point's local tangent plane
(:class:`rsu.maps.geometry.LocalPlane`) to whole centimetres, then writes node offsets as the
standard says: the first node from the reference point, each later node from the previous one,
each in the smallest node-XY alternative that holds it (differences of the rounded positions,
so no rounding error accumulates). A width different from ``lane_width`` becomes a ``dWidth``
on the node where it changes. Everything wrong is reported at once (:class:`MapError`), each
problem naming its feature (``features[3] (lane 7)``) and property.

Export (:func:`from_map`) writes what the import reads; computed lanes are written with their
computed centre line (they come back as node lists), node-LatLon nodes as their positions, and
what GeoJSON does not carry (other node attributes, regional extensions, road segments) is named
in the warnings it returns. export -> import -> export gives the same GeoJSON.
"""

from __future__ import annotations

import math
import re
from typing import Any

from rsu.maps.geometry import (
    DEFAULT_LANE_WIDTH_CM,
    Intersection,
    Lane,
    LocalPlane,
    MapError,
    directional_use,
    node_xy,
    select,
)

LANE_TYPES = ("vehicle", "crosswalk", "bikeLane", "sidewalk", "median", "striping", "trackedVehicle", "parking")
DIRECTIONS = ("ingress", "egress", "both", "none")
COORD_DECIMALS = 9  # degrees: 1e-9 degree is about 0.1 mm, well inside the centimetre of the offsets
MAX_NODES = 63  # NodeSetXY SIZE(2..63)
DWIDTH_RANGE = (-512, 511)  # Offset-B10
LANE_WIDTH_RANGE = (0, 32767)  # LaneWidth

POINT_PROPERTIES = {"intersection_id", "region", "name", "revision", "lane_width", "station_id", "speed_limits"}
LANE_PROPERTIES = {
    "lane_id",
    "name",
    "type",
    "type_attributes",
    "direction",
    "shared_with",
    "ingress_approach",
    "egress_approach",
    "maneuvers",
    "width",
    "widths",
    "signal_group",
    "connections",
    "stop_line_nodes",
    "overlays",
}
CONNECTION_KEYS = {"lane", "signal_group", "connection_id", "maneuver", "remote_intersection", "user_class"}
IGNORED_PROPERTIES = {"fid", "comment", "note"}  # what GIS tools and people add; never read


# --- export ---------------------------------------------------------------------------------------


def from_map(mapem: dict, intersection: str | None = None) -> tuple[dict, list[str]]:
    """(GeoJSON FeatureCollection, warnings) of one intersection of a MAPEM's JER JSON."""
    x = select(mapem, intersection)
    warnings = _dropped(mapem, x)
    plane = x.plane
    point: dict[str, Any] = {"intersection_id": x.id}
    if x.region is not None:
        point["region"] = x.region
    if x.name is not None:
        point["name"] = x.name
    point["revision"] = x.revision
    point["lane_width"] = x.lane_width_cm if x.lane_width_cm is not None else DEFAULT_LANE_WIDTH_CM
    if (mapem.get("header") or {}).get("stationID"):  # 0: none given (load_pdu fills a missing header so)
        point["station_id"] = mapem["header"]["stationID"]
    if "speedLimits" in x.raw:
        point["speed_limits"] = x.raw["speedLimits"]
    ref = [round(x.ref_lon, 7), round(x.ref_lat, 7)]
    if x.elevation_dm is not None:
        ref.append(x.elevation_dm / 10)
    features = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": ref}, "properties": point}]
    for lane in x.lanes:
        coords = []
        for east, north in lane.points:
            lat, lon = plane.to_wgs84(east, north)
            coords.append([round(lon, COORD_DECIMALS), round(lat, COORD_DECIMALS)])
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": coords},
                "properties": _lane_properties(lane),
            }
        )
    return {"type": "FeatureCollection", "features": features}, warnings


def _lane_properties(lane: Lane) -> dict:
    out: dict[str, Any] = {"lane_id": lane.lane_id}
    if lane.name is not None:
        out["name"] = lane.name
    out.update(
        type=lane.type, type_attributes=lane.type_attributes, direction=lane.direction, shared_with=lane.shared_with
    )
    for key, value in (
        ("ingress_approach", lane.ingress_approach),
        ("egress_approach", lane.egress_approach),
        ("maneuvers", lane.maneuvers),
    ):
        if value is not None:
            out[key] = value
    out["width"] = lane.widths_cm[0]
    if len(set(lane.widths_cm)) > 1:
        out["widths"] = list(lane.widths_cm)
    groups = {c.signal_group for c in lane.connections}
    shared = groups.pop() if len(groups) == 1 else None
    if shared is not None:
        out["signal_group"] = shared
    if lane.connections:
        conns = []
        for c in lane.connections:
            item: dict[str, Any] = {"lane": c.lane}
            fields: tuple[tuple[str, Any], ...] = (
                ("signal_group", None if shared is not None else c.signal_group),
                ("connection_id", c.connection_id),
                ("maneuver", c.maneuver),
                ("remote_intersection", c.remote),
                ("user_class", c.user_class),
            )
            item.update((name, v) for name, v in fields if v is not None)
            conns.append(item)
        out["connections"] = conns
    if lane.stop_line_nodes:
        out["stop_line_nodes"] = list(lane.stop_line_nodes)
    if "overlays" in lane.raw:
        out["overlays"] = lane.raw["overlays"]
    return out


def _dropped(mapem: dict, x: Intersection) -> list[str]:
    """What the GeoJSON does not carry, one line each."""
    out = []
    m = mapem.get("map", {})
    for key in ("roadSegments", "dataParameters", "restrictionList", "regional"):
        if key in m:
            out.append(f"map.{key} is not exported")
    if len(m.get("intersections") or []) > 1:
        out.append(f"only intersection {x.key} is exported (the MAPEM has {len(m['intersections'])})")
    for key in ("preemptPriorityData", "regional"):
        if key in x.raw:
            out.append(f"intersection {x.key}: {key} is not exported")
    for lane in x.lanes:
        raw = lane.raw
        where = f"lane {lane.lane_id}"
        if lane.computed_from is not None:
            out.append(f"{where}: a computed lane (from lane {lane.computed_from}), exported as its centre line")
        for key in ("regional",):
            if key in raw:
                out.append(f"{where}: {key} is not exported")
        if "regional" in raw["laneAttributes"]:
            out.append(f"{where}: laneAttributes.regional is not exported")
        for n, node in enumerate(raw["nodeList"].get("nodes") or []):
            attrs = dict(node.get("attributes") or {})
            attrs.pop("dWidth", None)
            local = [v for v in attrs.pop("localNode", []) if v != "stopLine"]
            dropped = sorted(attrs) + [f"localNode {v}" for v in local]
            if dropped:
                out.append(f"{where} node {n}: attributes {', '.join(dropped)} not exported")
    return out


# --- import ---------------------------------------------------------------------------------------


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")


def _integer(value: Any) -> int | None:
    """An int from JSON (GIS tools write 3.0 for 3), None when not a whole number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _whole_in(value: Any, lo: int, hi: int) -> bool:
    """``value`` is a whole number within lo..hi."""
    number = _integer(value)
    return number is not None and lo <= number <= hi


def _int_prop(
    props: dict,
    name: str,
    lo: int,
    hi: int,
    where: str,
    problems: _Problems,
    *,
    required: bool = False,
    default: int | None = None,
) -> int | None:
    if props.get(name) is None:
        if required:
            problems.add(where, f"{name}: missing")
        return default
    value = _integer(props[name])
    if value is None:
        problems.add(where, f"{name}: {props[name]!r} is not a whole number")
        return default
    if not lo <= value <= hi:
        problems.add(where, f"{name}: {value} is outside {lo}..{hi}")
        return default
    return value


def _hex_prop(props: dict, name: str, where: str, problems: _Problems, default: str | None = None) -> str | None:
    value = props.get(name)
    if value is None:
        return default
    if not isinstance(value, str) or not re.fullmatch(r"(?:[0-9a-fA-F]{2})+", value):
        problems.add(where, f'{name}: {value!r} is not the hex of a bit string (e.g. "a000")')
        return default
    return value.lower()


def _position(value: Any) -> tuple[float, float, float | None] | None:
    if (
        not isinstance(value, list)
        or len(value) not in (2, 3)
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        return None
    try:
        lon, lat = float(value[0]), float(value[1])
        z = float(value[2]) if len(value) == 3 else None
    except OverflowError:  # an integer too big for a float
        return None
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0) or (z is not None and not math.isfinite(z)):
        return None
    return lon, lat, z


def to_map(doc: Any) -> dict:
    """The JER JSON of a MAPEM (one intersection; a header when ``station_id`` is given) from GeoJSON.

    Raises :class:`MapError` with every problem found, each naming the feature and property.
    """
    problems = _Problems()
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection" or not isinstance(doc.get("features"), list):
        raise MapError(
            [('not a GeoJSON FeatureCollection (an object with "type": "FeatureCollection" and a "features" list)')]
        )
    points, lines = [], []
    for i, f in enumerate(doc["features"]):
        where = f"features[{i}]"
        geometry = f.get("geometry") if isinstance(f, dict) else None
        kind = geometry.get("type") if isinstance(geometry, dict) else None
        if not isinstance(f, dict) or f.get("type") != "Feature":
            problems.add(where, "not a GeoJSON Feature")
        elif kind == "Point":
            points.append((i, f))
        elif kind == "LineString":
            lines.append((i, f))
        else:
            problems.add(where, f"geometry {kind!r}: expected a Point (the reference point) or a LineString (a lane)")
    if len(points) != 1:
        found = ", ".join(f"features[{i}]" for i, _ in points) or "none"
        problems.add("features", f"exactly one Point (the intersection's reference point) is needed, found {found}")
    point = _point(*points[0], problems) if points else None
    plane = LocalPlane(point["refPoint"]["lat"] / 1e7, point["refPoint"]["long"] / 1e7) if point else None
    base_width = point["laneWidth"] if point else DEFAULT_LANE_WIDTH_CM
    lanes: list[tuple[int, dict]] = []
    seen: dict[int, int] = {}  # lane id -> feature index
    for i, f in lines:
        lane = _lane(i, f, plane, base_width, problems)
        if lane is None:
            continue
        lane_id = lane["laneID"]
        if lane_id in seen:
            problems.add(
                f"features[{i}] (lane {lane_id})",
                f"lane_id: {lane_id} is already the lane of "
                f"features[{seen[lane_id]}] (lane ids are unique in an intersection)",
            )
        else:
            seen[lane_id] = i
        lanes.append((i, lane))
    for i, lane in lanes:
        for k, c in enumerate(lane.get("connectsTo") or []):
            if "remoteIntersection" not in c and c["connectingLane"]["lane"] not in seen:
                problems.add(
                    f"features[{i}] (lane {lane['laneID']})",
                    f"connections[{k}]: lane {c['connectingLane']['lane']} is not a lane of the intersection",
                )
    if not lines:
        problems.add("features", "no LineString (lane): an intersection needs at least one lane")
    if problems.items:
        raise MapError(sorted(problems.items, key=_feature_order))
    assert point is not None
    station = point.pop("_station_id", None)
    revision = point["revision"]
    intersection = {**point, "laneSet": [lane for _, lane in lanes]}
    mapem: dict[str, Any] = {
        "map": {"msgIssueRevision": revision, "layerType": "intersectionData", "intersections": [intersection]}
    }
    if station is not None:
        mapem = {"header": _header(station), **mapem}
    _codec_check(mapem, [i for i, _ in lanes])
    return mapem


def _feature_order(problem: str) -> int:
    """Problems of the whole collection first, then by feature (a stable sort keeps each feature's order)."""
    m = re.match(r"features\[(\d+)\]", problem)
    return int(m.group(1)) if m else -1


def _point(i: int, f: dict, problems: _Problems) -> dict | None:
    props = f.get("properties") or {}
    where = f"features[{i}] (reference point)"
    if not isinstance(props, dict):
        problems.add(where, "properties: expected an object")
        return None
    name = props.get("name")
    for extra in sorted(set(props) - POINT_PROPERTIES - IGNORED_PROPERTIES):
        problems.add(
            where, f"{extra}: not a property of the reference point (known: {', '.join(sorted(POINT_PROPERTIES))})"
        )
    out: dict[str, Any] = {}
    if name is not None:
        if not isinstance(name, str) or not 1 <= len(name) <= 63 or not name.isascii():
            problems.add(where, f"name: {name!r} is not 1..63 ASCII characters (DescriptiveName)")
        else:
            out["name"] = name
    ref: dict[str, Any] = {"id": _int_prop(props, "intersection_id", 0, 65535, where, problems, required=True)}
    region = _int_prop(props, "region", 0, 65535, where, problems)
    if region is not None:
        ref = {"region": region, **ref}
    out["id"] = ref
    out["revision"] = _int_prop(props, "revision", 0, 127, where, problems, default=0)
    pos = _position(f["geometry"].get("coordinates"))
    if pos is None:
        problems.add(
            where,
            f"coordinates: {f['geometry'].get('coordinates')!r} is not a WGS84 [lon, lat] or [lon, lat, elevation m]",
        )
        return None
    lon, lat, z = pos
    out["refPoint"] = {"lat": round(lat * 1e7), "long": round(lon * 1e7)}
    if z is not None:
        if not -409.6 <= z <= 6143.9:
            problems.add(where, f"coordinates: elevation {z} m is outside -409.6..6143.9 m (Elevation)")
        else:
            out["refPoint"]["elevation"] = round(z * 10)
    out["laneWidth"] = _int_prop(props, "lane_width", *LANE_WIDTH_RANGE, where, problems, default=DEFAULT_LANE_WIDTH_CM)
    if "speed_limits" in props:
        out["speedLimits"] = props["speed_limits"]
    out["_station_id"] = _int_prop(props, "station_id", 0, 4294967295, where, problems)
    return out


def _connections(props: dict, where: str, problems: _Problems) -> list[dict]:
    value = props.get("connections")
    lane_group = _int_prop(props, "signal_group", 0, 255, where, problems)
    if value is None:
        return []
    if isinstance(value, str):  # "9,12" as a GIS attribute table may hold it
        items: list[Any] = []
        for part in value.split(","):
            part = part.strip()
            items.append(int(part) if re.fullmatch(r"-?[0-9]+", part) else part)
        value = [i for i in items if i != ""]
    if not isinstance(value, list):
        problems.add(where, f"connections: {value!r} is not a list of lane ids or connection objects")
        return []
    out = []
    for k, item in enumerate(value):
        cwhere = f"{where}"
        if _integer(item) is not None:
            item = {"lane": _integer(item)}
        if not isinstance(item, dict):
            problems.add(cwhere, f"connections[{k}]: {item!r} is neither a lane id nor an object")
            continue
        for extra in sorted(set(item) - CONNECTION_KEYS):
            problems.add(cwhere, f"connections[{k}].{extra}: unknown (known: {', '.join(sorted(CONNECTION_KEYS))})")
        sub = _Problems()
        lane = _int_prop(item, "lane", 0, 255, "", sub, required=True)
        group = _int_prop(item, "signal_group", 0, 255, "", sub, default=lane_group)
        conn_id = _int_prop(item, "connection_id", 0, 255, "", sub)
        user_class = _int_prop(item, "user_class", 0, 255, "", sub)
        maneuver = _hex_prop(item, "maneuver", "", sub)
        remote = item.get("remote_intersection")
        if remote is not None and (
            not isinstance(remote, dict) or set(remote) - {"id", "region"} or _integer(remote.get("id")) is None
        ):
            sub.add("", f'remote_intersection: {remote!r} is not {{"id": N}} or {{"region": R, "id": N}}')
        for p in sub.items:
            problems.add(cwhere, f"connections[{k}].{p[2:]}")
        if sub.items or lane is None:
            continue
        connecting: dict[str, Any] = {"lane": lane}
        if maneuver is not None:
            connecting["maneuver"] = maneuver
        conn: dict[str, Any] = {"connectingLane": connecting}
        if remote is not None:
            conn["remoteIntersection"] = remote
        for key, v in (("signalGroup", group), ("userClass", user_class), ("connectionID", conn_id)):
            if v is not None:
                conn[key] = v
        out.append(conn)
    return out


def _lane(i: int, f: dict, plane: LocalPlane | None, base_width: int, problems: _Problems) -> dict | None:
    props = f.get("properties")
    if not isinstance(props, dict):
        problems.add(f"features[{i}]", "properties: expected an object (lane_id, type, direction, ...)")
        return None
    lane_id = _int_prop(props, "lane_id", 0, 255, f"features[{i}]", problems, required=True)
    where = f"features[{i}] (lane {lane_id})" if lane_id is not None else f"features[{i}]"
    for extra in sorted(set(props) - LANE_PROPERTIES - IGNORED_PROPERTIES):
        problems.add(where, f"{extra}: not a lane property (known: {', '.join(sorted(LANE_PROPERTIES))})")
    lane_type = props.get("type", "vehicle")
    if lane_type not in LANE_TYPES:
        problems.add(where, f"type: {lane_type!r} is not one of {', '.join(LANE_TYPES)}")
        lane_type = "vehicle"
    direction = props.get("direction")
    if direction not in DIRECTIONS:
        problems.add(
            where,
            f"direction: {direction!r} is not one of {', '.join(DIRECTIONS)}"
            if direction is not None
            else "direction: missing (ingress, egress, both or none)",
        )
        direction = "none"
    type_bits = _hex_prop(props, "type_attributes", where, problems, "00" if lane_type == "vehicle" else "0000")
    shared = _hex_prop(props, "shared_with", where, problems, "0000")
    maneuvers = _hex_prop(props, "maneuvers", where, problems)
    ingress_approach = _int_prop(props, "ingress_approach", 0, 15, where, problems)
    egress_approach = _int_prop(props, "egress_approach", 0, 15, where, problems)
    connections = _connections(props, where, problems)
    nodes = _nodes(props, f["geometry"].get("coordinates"), plane, base_width, where, problems)
    name = props.get("name")
    if name is not None and (not isinstance(name, str) or not 1 <= len(name) <= 63 or not name.isascii()):
        problems.add(where, f"name: {name!r} is not 1..63 ASCII characters (DescriptiveName)")
    overlays = props.get("overlays")
    if overlays is not None and (
        not isinstance(overlays, list) or not 1 <= len(overlays) <= 5 or not all(_whole_in(v, 0, 255) for v in overlays)
    ):
        problems.add(where, f"overlays: {overlays!r} is not a list of 1..5 lane ids")
    if lane_id is None or nodes is None:
        return None
    out: dict[str, Any] = {"laneID": lane_id}
    for key, value in (("name", name), ("ingressApproach", ingress_approach), ("egressApproach", egress_approach)):
        if value is not None:
            out[key] = value
    out["laneAttributes"] = {
        "directionalUse": directional_use(direction),
        "sharedWith": shared,
        "laneType": {lane_type: type_bits},
    }
    if maneuvers is not None:
        out["maneuvers"] = maneuvers
    out["nodeList"] = {"nodes": nodes}
    if connections:
        out["connectsTo"] = connections
    if overlays:
        out["overlays"] = [_integer(v) for v in overlays]
    return out


def _nodes(
    props: dict, coords: Any, plane: LocalPlane | None, base_width: int, where: str, problems: _Problems
) -> list[dict] | None:
    if not isinstance(coords, list) or not 2 <= len(coords) <= MAX_NODES:
        count = len(coords) if isinstance(coords, list) else coords
        problems.add(where, f"coordinates: a lane has 2..{MAX_NODES} positions (NodeSetXY), found {count!r}")
        return None
    width = _int_prop(props, "width", *LANE_WIDTH_RANGE, where, problems, default=base_width)
    widths = props.get("widths")
    if widths is not None:
        if (
            not isinstance(widths, list)
            or len(widths) != len(coords)
            or not all(_whole_in(w, *LANE_WIDTH_RANGE) for w in widths)
        ):
            problems.add(where, f"widths: expected {len(coords)} widths in cm (one per position, each 0..32767)")
            widths = None
        else:
            widths = [_integer(w) for w in widths]
            if "width" in props and width != widths[0]:
                problems.add(where, f"widths: the first ({widths[0]}) is not width ({width})")
    if widths is None:
        widths = [width if width is not None else base_width] * len(coords)
    stop_nodes = props.get("stop_line_nodes") or []
    if not isinstance(stop_nodes, list) or not all(_whole_in(n, 0, len(coords) - 1) for n in stop_nodes):
        problems.add(where, f"stop_line_nodes: {stop_nodes!r} is not a list of node indexes 0..{len(coords) - 1}")
        stop_nodes = []
    stop_nodes = {_integer(n) for n in stop_nodes}
    out, previous, ok = [], (0, 0), True
    previous_width = base_width
    for n, value in enumerate(coords):
        pos = _position(value)
        if pos is None:
            problems.add(where, f"coordinates[{n}]: {value!r} is not a WGS84 [lon, lat]")
            ok = False
            continue
        if plane is None:
            continue
        east, north = plane.to_local(pos[1], pos[0])
        here = (round(east * 100), round(north * 100))
        dx, dy = here[0] - previous[0], here[1] - previous[1]
        delta = node_xy(dx, dy)
        if delta is None:
            frm = "the reference point" if n == 0 else f"position {n - 1}"
            problems.add(
                where,
                f"coordinates[{n}]: {dx / 100:.2f} m east, {dy / 100:.2f} m north of {frm} is "
                "beyond a node offset (node-XY6: -327.68..327.67 m)",
            )
            ok = False
        previous = here
        node: dict[str, Any] = {"delta": delta}
        attributes: dict[str, Any] = {}
        if n in stop_nodes:
            attributes["localNode"] = ["stopLine"]
        d_width = widths[n] - previous_width
        if d_width:
            if not DWIDTH_RANGE[0] <= d_width <= DWIDTH_RANGE[1]:
                frm = "the intersection's lane_width" if n == 0 else f"the width at position {n - 1}"
                problems.add(
                    where,
                    f"{'width' if n == 0 else f'widths[{n}]'}: {widths[n]} cm differs from "
                    f"{frm} ({previous_width} cm) by more than a dWidth holds (-512..511 cm)",
                )
                ok = False
            attributes["dWidth"] = d_width
        previous_width = widths[n]
        if attributes:
            node["attributes"] = attributes
        out.append(node)
    return out if ok and plane is not None else None


def _header(station_id: int) -> dict:
    from rsu import catalog

    return {
        "protocolVersion": catalog.MAPEM.protocol_version,
        "messageID": catalog.MAPEM.message_id,
        "stationID": station_id,
    }


def _codec_check(mapem: dict, feature_of_lane: list[int]) -> None:
    """The codec's own check of the result (what the checks above missed), named by feature."""
    from rsu import catalog
    from rsu.codec.errors import CodecError
    from rsu.codec.facilities import get_codec

    try:
        get_codec().from_jer({"header": _header(0), **mapem}, catalog.MAPEM)
    except CodecError as e:
        text = str(e)
        m = re.search(r"map\.intersections\[0\]\.laneSet\[(\d+)\]", text)
        if m and int(m.group(1)) < len(feature_of_lane):
            j = int(m.group(1))
            lane = mapem["map"]["intersections"][0]["laneSet"][j]
            text = f"features[{feature_of_lane[j]}] (lane {lane['laneID']}): {text}"
        elif "intersections[0]" in text:
            text = f"reference point: {text}"
        raise MapError([text]) from None
