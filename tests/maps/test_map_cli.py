"""``rsu map render | export | import`` in real subprocesses (``python -m rsu``)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from conftest import EXAMPLES, run_rsu

from maps.support import example_map, example_spat, with_state

MAP = str(EXAMPLES / "mapem-4arm-intersection.json")
SPAT = str(EXAMPLES / "spatem-4arm-intersection.json")


def classes(svg: bytes, name: str) -> list[ET.Element]:
    return [e for e in ET.fromstring(svg).iter() if name in (e.get("class") or "").split()]


def ok(proc) -> bytes:
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"Traceback" not in proc.stderr
    return proc.stdout


def test_render_a_map_file_to_svg(tmp_path):
    out = tmp_path / "map.svg"
    assert ok(run_rsu("map", "render", MAP, "--out", str(out))) == b""
    svg = out.read_bytes()
    assert len(classes(svg, "lane")) == 16 and len(classes(svg, "connection")) == 16
    assert len(classes(svg, "stop-line")) == 8 and len(classes(svg, "signal-group")) == 12
    assert not [e for e in ET.fromstring(svg).iter() if "state-" in (e.get("class") or "")]


def test_render_uper_hex_and_binary_with_a_spatem(tmp_path):
    hex_map = ok(run_rsu("encode", "mapem", MAP)).decode().strip()
    spat_bin = tmp_path / "spat.uper"
    ok(run_rsu("encode", "spatem", SPAT, "--out", str(spat_bin)))
    from_hex = ok(run_rsu("map", "render", hex_map, "--spat", str(spat_bin)))
    map_bin = tmp_path / "map.uper"
    map_bin.write_bytes(bytes.fromhex(hex_map))
    from_file = ok(run_rsu("map", "render", str(map_bin), "--spat", SPAT))
    assert from_hex == from_file
    [sg1] = [e for e in classes(from_hex, "signal-group") if e.get("data-signal-group") == "1"]
    assert "state-green" in sg1.get("class")
    # the same MAP through stdin, with group 1 now red
    red = tmp_path / "red.json"
    red.write_text(json.dumps(with_state(example_spat(), 1, "stop-And-Remain")))
    from_stdin = ok(run_rsu("map", "render", "-", "--spat", str(red), input=json.dumps(example_map()).encode()))
    [sg1] = [e for e in classes(from_stdin, "signal-group") if e.get("data-signal-group") == "1"]
    assert "state-red" in sg1.get("class")


def test_render_errors_are_one_line(tmp_path):
    other = example_spat()
    other["spat"]["intersections"][0]["id"]["id"] = 999
    path = tmp_path / "other.json"
    path.write_text(json.dumps(other))
    for args, needle in (
        (("map", "render", MAP, "--spat", str(path)), "no state for intersection 1201"),
        (("map", "render", SPAT), "not the JER JSON of a MAPEM"),
        (("map", "render", MAP, "--intersection", "5"), "no intersection '5'"),
        (("map", "render", str(tmp_path / "missing.json")), "neither a file nor a hex string"),
    ):
        proc = run_rsu(*args)
        err = proc.stderr.decode()
        assert proc.returncode == 2 and err.startswith("rsu: error: ") and err.count("\n") == 1, err
        assert needle in err, err
    assert run_rsu("map").returncode == 2


def test_export_import_export_round_trip_and_the_import_encodes(tmp_path):
    first, second, imported = tmp_path / "a.geojson", tmp_path / "b.geojson", tmp_path / "1201.json"
    proc = run_rsu("map", "export", MAP, "--out", str(first))
    ok(proc)
    assert "computed lane" in proc.stderr.decode()  # what GeoJSON does not carry is named
    ok(run_rsu("map", "import", str(first), "--out", str(imported)))
    ok(run_rsu("map", "export", str(imported), "--out", str(second)))
    assert json.loads(second.read_text()) == json.loads(first.read_text())
    assert first.read_bytes() == second.read_bytes()
    uper = ok(run_rsu("encode", "mapem", str(imported))).decode().strip()
    decoded = json.loads(ok(run_rsu("decode", uper)))
    assert decoded == json.loads(imported.read_text())
    doc = json.loads(first.read_text())
    assert doc["type"] == "FeatureCollection" and len(doc["features"]) == 17


def test_import_lists_every_error_and_writes_nothing(tmp_path):
    doc = json.loads(ok(run_rsu("map", "export", MAP)))
    doc["features"][1]["properties"]["lane_id"] = 2  # lane 2 exists already
    doc["features"][3]["properties"]["signal_group"] = 300
    doc["features"][5]["properties"]["width"] = -1
    src, out = tmp_path / "bad.geojson", tmp_path / "out.json"
    src.write_text(json.dumps(doc))
    proc = run_rsu("map", "import", str(src), "--out", str(out))
    assert proc.returncode == 2 and not out.exists()
    lines = proc.stderr.decode().splitlines()
    assert lines[0] == f"{src}: 3 error(s); nothing written"
    assert lines[1].startswith("  features[2] (lane 2): lane_id: 2 is already the lane of features[1]")
    assert lines[2].startswith("  features[3] (lane 3): signal_group: 300 is outside 0..255")
    assert lines[3].startswith("  features[5] (lane 4): width: -1 is outside 0..32767")
    assert len(lines) == 4
