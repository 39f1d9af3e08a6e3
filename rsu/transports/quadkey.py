"""Quadkeys (Bing Maps tile system: Web Mercator, Z-order digits 0-3, north-west first), sans-I/O.

Layer: takes a WGS 84 position, gives the quadkey digits used as MQTT topic levels by the
C-ITS MQTT deployments (its-client / 5GCroCo geo-broker: one topic level per digit).
Digit = 1 if the tile is in the east half, + 2 if in the south half, at each level.
"""

from __future__ import annotations

import math

MAX_LATITUDE = 85.05112878  # Web Mercator limit
MAX_DEPTH = 31


def tile(latitude: float, longitude: float, depth: int) -> tuple[int, int]:
    """Tile (x, y) containing the position at ``depth`` (0..31)."""
    if not 0 <= depth <= MAX_DEPTH:
        raise ValueError(f"quadkey depth {depth} is outside 0..{MAX_DEPTH}")
    lat = min(max(latitude, -MAX_LATITUDE), MAX_LATITUDE)
    x = (longitude + 180.0) / 360.0
    s = math.sin(math.radians(lat))
    y = 0.5 - math.log((1 + s) / (1 - s)) / (4 * math.pi)
    n = 1 << depth
    return min(max(int(math.floor(x * n)), 0), n - 1), min(max(int(math.floor(y * n)), 0), n - 1)


def from_tile(x: int, y: int, depth: int) -> str:
    digits = []
    for i in range(depth, 0, -1):
        mask = 1 << (i - 1)
        digits.append(str((1 if x & mask else 0) + (2 if y & mask else 0)))
    return "".join(digits)


def to_tile(quadkey: str) -> tuple[int, int, int]:
    """Quadkey -> (x, y, depth); ValueError for anything but digits 0-3."""
    validate(quadkey)
    x = y = 0
    for ch in quadkey:
        d = int(ch)
        x, y = (x << 1) | (d & 1), (y << 1) | (d >> 1)
    return x, y, len(quadkey)


def quadkey(latitude: float, longitude: float, depth: int) -> str:
    """The quadkey of the tile containing the position, ``depth`` digits long."""
    return from_tile(*tile(latitude, longitude, depth), depth)


def validate(quadkey: str) -> str:
    if not isinstance(quadkey, str) or any(c not in "0123" for c in quadkey) or len(quadkey) > MAX_DEPTH:
        raise ValueError(f"{quadkey!r} is not a quadkey (digits 0-3, at most {MAX_DEPTH})")
    return quadkey


def neighbours(quadkey: str) -> list[str]:
    """The tile and its (up to) 8 neighbours at the same depth; wraps at ±180°, stops at the poles."""
    x, y, depth = to_tile(quadkey)
    n = 1 << depth
    out = []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            ny = y + dy
            if not 0 <= ny < n:
                continue
            key = from_tile((x + dx) % n, ny, depth)
            if key not in out:
                out.append(key)
    return out
