"""Does a certificate's region (IEEE 1609.2 GeographicRegion) cover a position? The sender's check
that an AT may be used where this RSU stands (TS 103 097 §7.2.1: a message signed outside the
AT's region is invalid for every receiver).

Coordinates in the certificate are in 1/10 micro-degrees (WGS 84); positions here in degrees.

* ``circularRegion``: great-circle distance (haversine, mean Earth radius) from the centre at most
  ``radius`` metres.
* ``rectangularRegion`` (a list): inside any rectangle, latitude between south-east and north-west,
  longitude from north-west eastwards to south-east (a rectangle may cross the antimeridian).
* ``polygonalRegion``: inside the polygon (even-odd rule in the latitude/longitude plane: edges are
  treated as straight in degrees, which differs from geodesic edges by less than metres for the
  regions a PKI issues, but a position within that distance of an edge may be judged either way).
* ``identifiedRegion`` (UN M.49 country codes, regions, subregions): *not checkable* without a
  country-border table, which rsu does not carry. Accepted, and reported as not checked
  (``checked`` is False): the operator enrolled the RSU for its country, and the EA/AA issued the
  region. An absent region means "valid everywhere" (the issuer's region applies).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

EARTH_RADIUS_M = 6_371_008.8
UNIT = 1e7  # 1/10 micro-degree per degree


@dataclass(frozen=True)
class Coverage:
    covered: bool
    checked: bool  # False: a region type rsu cannot check (identified regions), accepted
    detail: str


def covers(region: tuple[str, Any] | None, latitude: float, longitude: float) -> Coverage:
    """Whether ``region`` (a decoded GeographicRegion CHOICE, or None) covers the position."""
    if region is None:
        return Coverage(True, True, "no region: valid wherever the issuer is")
    alt, value = region
    here = f"{latitude:.6f},{longitude:.6f}"
    if alt == "circularRegion":
        c = value["center"]
        d = distance_m(latitude, longitude, c["latitude"] / UNIT, c["longitude"] / UNIT)
        ok = d <= value["radius"]
        return Coverage(ok, True, f"{here} is {d:.0f} m from the centre of a {value['radius']} m circular region")
    if alt == "rectangularRegion":
        ok = any(_in_rectangle(r, latitude, longitude) for r in value)
        return Coverage(ok, True, f"{here} {'inside' if ok else 'outside'} {len(value)} rectangular region(s)")
    if alt == "polygonalRegion":
        ok = _in_polygon([(p["latitude"] / UNIT, p["longitude"] / UNIT) for p in value], latitude, longitude)
        return Coverage(ok, True, f"{here} {'inside' if ok else 'outside'} a {len(value)}-point polygonal region")
    if alt == "identifiedRegion":
        return Coverage(
            True,
            False,
            f"identified region (countries {_countries(value)}): not checkable without "
            "a country-border table, accepted",
        )
    return Coverage(False, True, f"region type {alt} unknown: refused")


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def _in_rectangle(r: dict[str, Any], lat: float, lon: float) -> bool:
    nw, se = r["northWest"], r["southEast"]
    north: float = nw["latitude"] / UNIT
    west: float = nw["longitude"] / UNIT
    south: float = se["latitude"] / UNIT
    east: float = se["longitude"] / UNIT
    if not south <= lat <= north:
        return False
    if west <= east:
        return west <= lon <= east
    return lon >= west or lon <= east  # crosses the antimeridian


def _in_polygon(points: list[tuple[float, float]], lat: float, lon: float) -> bool:
    inside = False
    n = len(points)
    for i in range(n):
        (y1, x1), (y2, x2) = points[i], points[(i + 1) % n]
        if (y1 > lat) != (y2 > lat) and lon < x1 + (lat - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def _countries(value: list[tuple[str, Any]]) -> str:
    out = []
    for alt, v in value:
        out.append(str(v if alt == "countryOnly" else v.get("countryOnly", v.get("country"))))
    return ", ".join(out) or "none"
