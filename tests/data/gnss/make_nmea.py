"""Writes bordeaux-fix.nmea: a synthetic NMEA 0183 log (written for rsu's tests, not recorded from a
receiver). Run from the repository root: ``python tests/data/gnss/make_nmea.py``.

The receiver stands still at the default station position of config/rsu.example.yaml (44.837592 N,
0.579431 W, 71.4 m above mean sea level with a 50.1 m geoid separation: 121.5 m above the WGS 84
ellipsoid). Three epochs
without a fix (RMC status V, GGA quality 0, GSA mode 1), then twelve epochs of a 3D fix (GSA mode 3,
GGA quality 1, 6 satellites used of 8 in view), one second apart from 2026-11-21 10:00:00 UTC.
Each epoch: GGA, GSA, GSV (x2), RMC; checksums computed below (XOR of the bytes between $ and *).
"""

from __future__ import annotations

from pathlib import Path

LAT, LON = "4450.25552,N", "00034.76586,W"  # 44 deg 50.25552 min = 44.837592; 0 deg 34.76586 min = 0.579431
USED = (3, 7, 11, 16, 20, 27)
IN_VIEW = (
    (3, 62, 45, 42),
    (7, 40, 120, 39),
    (11, 33, 210, 37),
    (16, 71, 300, 44),
    (20, 18, 80, 31),
    (27, 25, 160, 35),
    (30, 8, 250, 0),
    (31, 5, 20, 0),
)


def sentence(body: str) -> str:
    checksum = 0
    for byte in body.encode("ascii"):
        checksum ^= byte
    return f"${body}*{checksum:02X}\r\n"


def epoch(second: int, fix: bool) -> list[str]:
    hhmmss = f"1000{second:02d}.00"
    if fix:
        gga = f"GPGGA,{hhmmss},{LAT},{LON},1,06,1.2,71.4,M,50.1,M,,"
        gsa = "GPGSA,A,3," + ",".join(f"{p:02d}" for p in USED) + ",,,,,,,2.1,1.2,1.7"
        rmc = f"GPRMC,{hhmmss},A,{LAT},{LON},0.0,0.0,211126,,,A"
    else:
        gga = f"GPGGA,{hhmmss},,,,,0,00,,,M,,M,,"
        gsa = "GPGSA,A,1,,,,,,,,,,,,,,,"
        rmc = f"GPRMC,{hhmmss},V,,,,,,,211126,,,N"
    gsv = []
    for part in range(2):
        sats = IN_VIEW[part * 4 : part * 4 + 4]
        gsv.append(
            f"GPGSV,2,{part + 1},{len(IN_VIEW):02d},"
            + ",".join(f"{p:02d},{e:02d},{a:03d},{s:02d}" if s else f"{p:02d},{e:02d},{a:03d}," for p, e, a, s in sats)
        )
    return [sentence(s) for s in (gga, gsa, *gsv, rmc)]


def main() -> None:
    lines = []
    for second in range(15):
        lines += epoch(second, fix=second >= 3)
    (Path(__file__).parent / "bordeaux-fix.nmea").write_text("".join(lines), newline="")


if __name__ == "__main__":
    main()
