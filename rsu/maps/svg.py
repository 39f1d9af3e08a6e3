"""Plain SVG text of an intersection (:class:`rsu.maps.geometry.Intersection`), to check a MAP by eye.

Layer: takes geometry (and optionally the JER JSON of a SPATEM), gives SVG text; no I/O.

Coordinates: one SVG user unit is one metre; x is east and y is **minus** north of the reference
point (SVG's y axis points down), so a node at offsets (x, y) cm is drawn at (x/100, -y/100).

What is drawn, with its class (every element also has an id that stays the same from one drawing
of the same MAP to the next, ``<key>`` being the intersection id, ``7-1201`` for region 7):

* ``g.lane`` ``#lane-<key>-<laneID>`` per lane (``data-lane``, ``data-type``, ``data-direction``,
  ``data-signal-groups``, ``data-state``), holding ``polygon.lane-surface`` (the lane with its
  widths), ``polyline.lane-centre`` (the nodes themselves), ``path.lane-arrow`` (travel direction:
  towards the first node on an ingress lane, away from it on an egress lane, both ways on a
  two-way lane, none on a lane with no direction) and ``text.lane-id``;
* ``line.stop-line`` ``#stopline-<key>-<laneID>-<node>`` across each node where a stop line is
  (the first node of an ingress vehicle, bike or tracked-vehicle lane, and nodes with the
  ``stopLine`` attribute);
* ``path.connection`` ``#connection-<key>-<laneID>-<n>`` per ``connectsTo`` entry (the n-th of
  the lane): a curve from the lane's first node to the first node of the lane it connects to
  (along the lane for a lane connecting to itself, e.g. a crosswalk; a short stub classed
  ``remote`` or ``missing`` when the other lane is in another intersection or absent);
* ``text.signal-group`` ``#signal-group-<key>-<laneID>-<group>`` per signal group of each lane,
  near the lane's first node;
* ``g.ref-point`` ``#ref-point-<key>`` and ``text.map-title``.

With a SPATEM, connections, signal-group labels, stop lines and lanes get the class and colour of
their signal group's current ``eventState`` (:data:`STATE_CLASS`): ``state-red``, ``state-amber``,
``state-green``, ``state-dark``, ``state-unknown`` (no state for the group). A lane with several
signal groups takes the most permissive of their states (green over amber over red). Colours are
presentation attributes, so a page's CSS can restyle the same classes.
"""

from __future__ import annotations

import math
from xml.sax.saxutils import escape, quoteattr

from rsu.maps.geometry import Intersection, Lane, select

# MovementPhaseState -> colour class (the first MovementEvent of a group is its current state)
STATE_CLASS = {
    "unavailable": "unknown",
    "dark": "dark",
    "stop-Then-Proceed": "red",
    "stop-And-Remain": "red",
    "pre-Movement": "amber",  # red + amber before green
    "permissive-Movement-Allowed": "green",
    "protected-Movement-Allowed": "green",
    "permissive-clearance": "amber",
    "protected-clearance": "amber",
    "caution-Conflicting-Traffic": "amber",  # flashing amber
}
STATE_COLOUR = {"red": "#d93025", "amber": "#f29900", "green": "#188038", "dark": "#3c4043", "unknown": "#9aa0a6"}
_PRECEDENCE = ("green", "amber", "red", "dark", "unknown")

LANE_FILL = {
    "vehicle": "#8a8f98",
    "crosswalk": "#e3e3e3",
    "bikeLane": "#c98f6b",
    "sidewalk": "#d8cfc4",
    "median": "#8bc34a",
    "striping": "#fff59d",
    "trackedVehicle": "#a1887f",
    "parking": "#90a4ae",
}
CONNECTION_COLOUR = "#1a73e8"
MARGIN_M = 6.0
PX_PER_M = 8.0
MAX_PX = 1600.0


def signal_states(spatem: dict, intersection: Intersection) -> dict[int, str]:
    """signal group -> current eventState of ``intersection`` in the JER JSON of a SPATEM.

    Raises ``ValueError`` when the SPATEM has no state for this intersection."""
    for state in spatem.get("spat", {}).get("intersections") or []:
        ref = state.get("id") or {}
        if ref.get("id") == intersection.id and ref.get("region") == intersection.region:
            out = {}
            for movement in state.get("states") or []:
                events = movement.get("state-time-speed") or []
                if events:
                    out[movement["signalGroup"]] = events[0]["eventState"]
            return out
    raise ValueError(f"the SPATEM has no state for intersection {intersection.key}")


def state_class(event_state: str | None) -> str:
    """red | amber | green | dark | unknown for a MovementPhaseState name (None: unknown)."""
    return STATE_CLASS.get(event_state or "", "unknown")


def render(x: Intersection, states: dict[int, str] | None = None, *, inline: bool = False) -> str:
    """The SVG document (text) of one intersection; ``states``: signal group -> eventState.

    ``inline``: without the XML declaration, for an ``<svg>`` element inside an HTML page."""
    text = _Drawing(x, states).svg()
    return text.split("\n", 1)[1] if inline else text


def render_mapem(
    mapem: dict, spatem: dict | None = None, intersection: str | None = None, *, inline: bool = False
) -> str:
    """SVG of one intersection of a MAPEM's JER JSON, coloured by a SPATEM's JER JSON when given.

    The entry point for other views (a web page draws the MAPEMs on the air with it, then updates
    the ``state-*`` classes of ``[data-signal-group]`` elements as SPATEMs come). Raises
    :class:`rsu.maps.geometry.MapError` for a MAP it cannot draw, ``ValueError`` for a SPATEM of
    another intersection.
    """
    x = select(mapem, intersection)
    return render(x, signal_states(spatem, x) if spatem is not None else None, inline=inline)


def _num(v: float) -> str:
    text = f"{v:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _pt(p: tuple[float, float]) -> str:
    return f"{_num(p[0])},{_num(-p[1])}"


def _unit(dx: float, dy: float) -> tuple[float, float]:
    n = math.hypot(dx, dy)
    return (dx / n, dy / n) if n > 1e-9 else (0.0, 0.0)


def _outline(lane: Lane) -> list[tuple[float, float]]:
    """The lane's surface: its centre line offset by half the width on each side (mitred, capped)."""
    pts, left, right = lane.points, [], []
    for i, (px, py) in enumerate(pts):
        normals = []
        for a, b in ((i - 1, i), (i, i + 1)):
            if a >= 0 and b < len(pts):
                ux, uy = _unit(pts[b][0] - pts[a][0], pts[b][1] - pts[a][1])
                if ux or uy:
                    normals.append((-uy, ux))
        if not normals:
            normals = [(0.0, 0.0)]
        nx, ny = _unit(sum(n[0] for n in normals), sum(n[1] for n in normals))
        cos_half = max(0.3, nx * normals[0][0] + ny * normals[0][1]) if (nx or ny) else 1.0
        half = lane.widths_cm[i] / 200.0 / cos_half
        left.append((px + nx * half, py + ny * half))
        right.append((px - nx * half, py - ny * half))
    return left + right[::-1]


def _along(points: list[tuple[float, float]], fraction: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """(point, unit direction) at ``fraction`` of the polyline's length."""
    lengths = [math.dist(points[k], points[k + 1]) for k in range(len(points) - 1)]
    target = sum(lengths) * fraction
    for k, seg in enumerate(lengths):
        if target <= seg or k == len(lengths) - 1:
            t = target / seg if seg > 0 else 0.0
            a, b = points[k], points[k + 1]
            return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t), _unit(b[0] - a[0], b[1] - a[1])
        target -= seg
    return points[0], (0.0, 0.0)


def _arrow(at: tuple[float, float], d: tuple[float, float], size: float) -> str:
    """Path data of an arrow head at ``at`` pointing along ``d``."""
    (x, y), (dx, dy) = at, d
    nx, ny = -dy, dx
    tip = (x + dx * size, y + dy * size)
    back = (x - dx * size, y - dy * size)
    left = (back[0] + nx * size * 0.6, back[1] + ny * size * 0.6)
    right = (back[0] - nx * size * 0.6, back[1] - ny * size * 0.6)
    return f"M{_pt(tip)} L{_pt(left)} L{_pt(at)} L{_pt(right)} Z"


def _entry_direction(lane: Lane) -> tuple[float, float]:
    """Unit vector from the lane's second node to its first (into the intersection for an ingress lane)."""
    (x0, y0), (x1, y1) = lane.points[0], lane.points[1]
    return _unit(x0 - x1, y0 - y1)


def _curve(a: Lane, b: Lane) -> str:
    """Path data of a connection from lane ``a``'s first node to lane ``b``'s first node."""
    p, q = a.points[0], b.points[0]
    da, db = _entry_direction(a), _entry_direction(b)
    control = ((p[0] + q[0]) / 2, (p[1] + q[1]) / 2)
    det = da[0] * -db[1] + db[0] * da[1]
    if abs(det) > 1e-6:  # where the two lanes' lines meet, if it lies ahead of both
        rx, ry = q[0] - p[0], q[1] - p[1]
        t = (rx * -db[1] + db[0] * ry) / det
        s = (da[0] * ry - da[1] * rx) / det
        if 0 < t < 4 * math.dist(p, q) and 0 < s < 4 * math.dist(p, q):
            control = (p[0] + da[0] * t, p[1] + da[1] * t)
    return f"M{_pt(p)} Q{_pt(control)} {_pt(q)}"


class _Drawing:
    def __init__(self, x: Intersection, states: dict[int, str] | None) -> None:
        self.x = x
        self.states = states
        self.key = x.key.replace(".", "-")

    def _state(self, groups: list[int]) -> str | None:
        """Colour class of signal groups (the most permissive), None without a SPATEM."""
        if self.states is None:
            return None
        classes = {state_class(self.states.get(g)) for g in groups} or {"unknown"}
        return next(c for c in _PRECEDENCE if c in classes)

    def svg(self) -> str:
        x = self.x
        pts = [p for lane in x.lanes for p in lane.points] + [(0.0, 0.0)]
        min_x, max_x = min(p[0] for p in pts) - MARGIN_M, max(p[0] for p in pts) + MARGIN_M
        min_y, max_y = min(-p[1] for p in pts) - MARGIN_M, max(-p[1] for p in pts) + MARGIN_M
        w, h = max_x - min_x, max_y - min_y
        scale = min(PX_PER_M, MAX_PX / max(w, h))
        title = x.name or f"intersection {x.key}"
        out = [
            '<?xml version="1.0" encoding="UTF-8"?>',
            (
                f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="{_num(min_x)} {_num(min_y)} {_num(w)} {_num(h)}" '
                f'width="{_num(w * scale)}" height="{_num(h * scale)}" class="rsu-map" '
                f'data-intersection={quoteattr(x.key)} data-revision="{x.revision}">'
            ),
            f"<title>{escape(title)} (intersection {escape(x.key)}, revision {x.revision})</title>",
            (
                f'<rect class="background" x="{_num(min_x)}" y="{_num(min_y)}" width="{_num(w)}" height="{_num(h)}" '
                'fill="#f8f9f4"/>'
            ),
            f'<g id="lanes-{self.key}" class="lanes">',
            *[self._lane(lane) for lane in x.lanes],
            "</g>",
            f'<g id="stop-lines-{self.key}" class="stop-lines">',
            *[self._stop_line(lane, n) for lane in x.lanes for n in lane.stop_lines],
            "</g>",
            f'<g id="connections-{self.key}" class="connections" fill="none">',
            *[self._connection(lane, c) for lane in x.lanes for c in lane.connections],
            "</g>",
            (
                f'<g id="signal-groups-{self.key}" class="signal-groups" font-size="1.4" text-anchor="middle" '
                'font-family="sans-serif" font-weight="bold">'
            ),
            *[self._signal_group(lane, k, g) for lane in x.lanes for k, g in enumerate(lane.signal_groups)],
            "</g>",
            (
                f'<g id="ref-point-{self.key}" class="ref-point" data-lat="{x.ref_lat:.7f}" data-lon="{x.ref_lon:.7f}">'
                '<circle cx="0" cy="0" r="0.6" fill="none" stroke="#202124" stroke-width="0.15"/>'
                '<path d="M-1,0 L1,0 M0,-1 L0,1" stroke="#202124" stroke-width="0.1"/>'
                f'<text x="0.8" y="-0.8" font-size="1" font-family="sans-serif">ref {x.ref_lat:.7f}, {x.ref_lon:.7f}'
                "</text></g>"
            ),
            (
                f'<text class="map-title" x="{_num(min_x + 1)}" y="{_num(min_y + 2)}" font-size="1.6" '
                f'font-family="sans-serif">{escape(title)} — id {escape(x.key)}, revision {x.revision}</text>'
            ),
            "</svg>",
        ]
        return "\n".join(out) + "\n"

    def _lane(self, lane: Lane) -> str:
        groups = " ".join(str(g) for g in lane.signal_groups)
        state = self._state(lane.signal_groups) if lane.signal_groups else None
        classes = f"lane lane-{lane.type} {lane.direction}" + (f" state-{state}" if state else "")
        head = (
            f'<g id="lane-{self.key}-{lane.lane_id}" class="{classes}" data-lane="{lane.lane_id}" '
            f'data-type="{lane.type}" data-direction="{lane.direction}" data-signal-groups="{groups}"'
            + (f' data-state="{state}"' if state else "")
            + ">"
        )
        if len(lane.points) < 2:
            return head + "</g>"
        parts = [
            head,
            (
                f'<polygon class="lane-surface" points="{" ".join(_pt(p) for p in _outline(lane))}" '
                f'fill="{LANE_FILL.get(lane.type, "#b0b0b0")}" stroke="#5f6368" stroke-width="0.05"/>'
            ),
            (
                f'<polyline class="lane-centre" points="{" ".join(_pt(p) for p in lane.points)}" fill="none" '
                'stroke="#ffffff" stroke-width="0.08" stroke-dasharray="0.6 0.6"/>'
            ),
        ]
        size = max(0.4, min(1.2, min(lane.widths_cm) / 400.0))
        arrows = {"ingress": [(0.5, -1)], "egress": [(0.5, 1)], "both": [(0.35, -1), (0.65, 1)], "none": []}
        for fraction, sense in arrows[lane.direction]:
            at, (dx, dy) = _along(lane.points, fraction)
            parts.append(f'<path class="lane-arrow" d="{_arrow(at, (dx * sense, dy * sense), size)}" fill="#ffffff"/>')
        end, (dx, dy) = _along(lane.points, 1.0)
        label = (end[0] + dx * 1.5, end[1] + dy * 1.5)
        parts.append(
            f'<text class="lane-id" x="{_num(label[0])}" y="{_num(-label[1])}" font-size="1.2" '
            f'font-family="sans-serif" text-anchor="middle" dominant-baseline="middle">{lane.lane_id}</text>'
        )
        parts.append("</g>")
        return "".join(parts)

    def _stop_line(self, lane: Lane, node: int) -> str:
        if len(lane.points) < 2:
            return ""
        k = min(node, len(lane.points) - 2)
        (x0, y0), (x1, y1) = lane.points[k], lane.points[k + 1]
        ux, uy = _unit(x1 - x0, y1 - y0)
        half = lane.widths_cm[node] / 200.0
        px, py = lane.points[node]
        a, b = (px - uy * half, py + ux * half), (px + uy * half, py - ux * half)
        state = self._state(lane.signal_groups) if lane.signal_groups else None
        colour = STATE_COLOUR[state] if state else "#ffffff"
        classes = "stop-line" + (f" state-{state}" if state else "")
        return (
            f'<line id="stopline-{self.key}-{lane.lane_id}-{node}" class="{classes}" data-lane="{lane.lane_id}" '
            f'data-node="{node}" x1="{_num(a[0])}" y1="{_num(-a[1])}" x2="{_num(b[0])}" y2="{_num(-b[1])}" '
            f'stroke="{colour}" stroke-width="0.4"/>'
        )

    def _connection(self, lane: Lane, c) -> str:
        target = None if c.remote is not None else self.x.lane(c.lane)
        kind = ""
        if len(lane.points) < 2:
            d = ""
        elif target is lane:
            d = "M" + " L".join(_pt(p) for p in lane.points)
        elif target is not None and len(target.points) >= 2:
            d = _curve(lane, target)
        else:
            kind = " remote" if c.remote is not None else " missing"
            (x0, y0), (dx, dy) = lane.points[0], _entry_direction(lane)
            d = f"M{_pt((x0, y0))} L{_pt((x0 + dx * 4, y0 + dy * 4))}"
        state = self._state([c.signal_group]) if c.signal_group is not None else None
        if self.states is not None and state is None:
            state = "unknown"
        colour = STATE_COLOUR[state] if state else CONNECTION_COLOUR
        attrs = [
            f'id="connection-{self.key}-{lane.lane_id}-{c.index}"',
            f'class="connection{kind}' + (f' state-{state}"' if state else '"'),
            f'data-from="{lane.lane_id}"',
            f'data-to="{c.lane}"',
        ]
        if c.signal_group is not None:
            attrs.append(f'data-signal-group="{c.signal_group}"')
        if c.connection_id is not None:
            attrs.append(f'data-connection-id="{c.connection_id}"')
        dash = ' stroke-dasharray="0.8 0.5"' if kind else ""
        return f'<path {" ".join(attrs)} d="{d}" stroke="{colour}" stroke-width="0.3" stroke-opacity="0.85"{dash}/>'

    def _signal_group(self, lane: Lane, k: int, group: int) -> str:
        if len(lane.points) < 2:
            return ""
        (x0, y0), (dx, dy) = lane.points[0], _entry_direction(lane)
        spread = (k - (len(lane.signal_groups) - 1) / 2) * 1.8
        at = (x0 + dx * 2.0 - dy * spread, y0 + dy * 2.0 + dx * spread)
        state = self._state([group])
        colour = STATE_COLOUR[state] if state else "#202124"
        classes = "signal-group" + (f" state-{state}" if state else "")
        return (
            f'<text id="signal-group-{self.key}-{lane.lane_id}-{group}" class="{classes}" '
            f'data-lane="{lane.lane_id}" data-signal-group="{group}" x="{_num(at[0])}" y="{_num(-at[1])}" '
            f'fill="{colour}" dominant-baseline="middle">S{group}</text>'
        )
