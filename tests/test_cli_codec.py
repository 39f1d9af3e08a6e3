"""``rsu encode`` / ``rsu decode`` in real subprocesses: round trips, binary and hex inputs, one-line errors."""

from __future__ import annotations

import json

import pytest
from conftest import EXAMPLES, run_rsu

SPATEM_JER = {
    "header": {"protocolVersion": 2, "messageID": 4, "stationID": 4711},
    "spat": {
        "intersections": [
            {
                "id": {"id": 1201},
                "revision": 3,
                "status": "0000",
                "states": [
                    {
                        "signalGroup": 1,
                        "state-time-speed": [
                            {
                                "eventState": "protected-Movement-Allowed",
                                "timing": {"minEndTime": 1200, "maxEndTime": 1500},
                            }
                        ],
                    }
                ],
                "regional": [
                    {
                        "regionId": 3,
                        "regExtValue": {
                            "activePrioritizations": [{"stationID": 99, "priorState": "granted", "signalGroup": 1}]
                        },
                    }
                ],
            }
        ]
    },
}


def assert_one_line_error(proc, *needles):
    assert proc.returncode == 2, proc
    err = proc.stderr.decode()
    assert err.startswith("rsu: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    assert proc.stdout == b""


@pytest.fixture
def spatem_file(tmp_path):
    path = tmp_path / "spatem.json"
    path.write_text(json.dumps(SPATEM_JER))
    return path


def test_encode_then_decode_round_trip(spatem_file):
    enc = run_rsu("encode", "spatem", str(spatem_file))
    assert enc.returncode == 0, enc.stderr
    hexstr = enc.stdout.decode().strip()
    assert hexstr.startswith("0204") and bytes.fromhex(hexstr)
    dec = run_rsu("decode", hexstr)
    assert dec.returncode == 0, dec.stderr
    assert json.loads(dec.stdout) == SPATEM_JER


def test_encode_from_stdin_and_binary_out(tmp_path):
    out = tmp_path / "spatem.uper"
    enc = run_rsu("encode", "spatem", "-", "--out", str(out), input=json.dumps(SPATEM_JER).encode())
    assert enc.returncode == 0, enc.stderr
    assert enc.stdout == b""
    data = out.read_bytes()
    assert data[:2] == b"\x02\x04"
    for source in (str(out), "-"):  # binary file, then binary on stdin
        dec = run_rsu("decode", source, input=data if source == "-" else None)
        assert dec.returncode == 0, dec.stderr
        assert json.loads(dec.stdout) == SPATEM_JER
    hexfile = tmp_path / "spatem.hex"
    hexfile.write_text(data.hex(":") + "\n")  # hex text with separators and a newline
    dec = run_rsu("decode", str(hexfile))
    assert json.loads(dec.stdout) == SPATEM_JER


def test_decode_pdu_flag_prints_the_bare_pdu(spatem_file):
    hexstr = run_rsu("encode", "spatem", str(spatem_file)).stdout.decode().strip()
    dec = run_rsu("decode", "--pdu", hexstr)
    assert json.loads(dec.stdout) == SPATEM_JER


@pytest.mark.parametrize(
    "content, needles",
    [
        ("{not json", ["invalid JSON", "line 1"]),
        (
            json.dumps({**SPATEM_JER, "header": {"protocolVersion": 2, "messageID": 5, "stationID": 1}}),
            ["header.messageID", "does not match SPATEM"],
        ),
    ],
)
def test_encode_bad_input_is_one_line(tmp_path, content, needles):
    path = tmp_path / "bad.json"
    path.write_text(content)
    assert_one_line_error(run_rsu("encode", "spatem", str(path)), *needles)


def test_encode_names_the_field_path(tmp_path):
    bad = json.loads(json.dumps(SPATEM_JER))
    bad["spat"]["intersections"][0]["states"][0]["signalGroup"] = 300
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    assert_one_line_error(
        run_rsu("encode", "spatem", str(path)), "spat.intersections[0].states[0].signalGroup: 300 > 255"
    )


def test_encode_unknown_type_and_missing_file(tmp_path):
    assert_one_line_error(run_rsu("encode", "cam", "x.json"), "invalid choice: 'cam'")
    assert run_rsu("encode", "SPATEM", str(EXAMPLES / "spatem-4arm-intersection.json")).returncode == 0
    assert_one_line_error(run_rsu("encode", "spatem", str(tmp_path / "nope.json")), "no such file")


@pytest.mark.parametrize(
    "arg, needles",
    [
        ("zz", ["neither a file nor a hex string"]),
        ("0207000000010000", ["unknown messageID 7"]),
        ("0104000000010000", ["SPATEM protocolVersion 1 is not supported"]),
        ("020400", ["truncated ItsPduHeader"]),
        ("", ["empty INPUT: give a hex string, a file, or - to read stdin"]),  # was ": is a directory"
        ("  ", ["empty INPUT"]),
        ("02040000000100ffffffffffff", ["malformed SPATEM"]),
        # a valid IVIM with an IviContainer alternative newer than our schema (was a traceback once)
        ("020600000000800000000000043830008000000000", ["unknown IviContainer alternative", "ivi.optional[0]"]),
    ],
)
def test_decode_bad_input_is_one_line(arg, needles):
    assert_one_line_error(run_rsu("decode", arg), *needles)


def test_decode_empty_stdin_and_empty_file_are_named(tmp_path):
    assert_one_line_error(run_rsu("decode", "-", input=b"\n"), "stdin: empty input")
    (tmp_path / "empty.hex").write_bytes(b"")
    assert_one_line_error(run_rsu("decode", str(tmp_path / "empty.hex")), "empty.hex: empty input")
    assert_one_line_error(run_rsu("verify", ""), "empty INPUT")


def test_decode_random_binary_file_is_one_line(tmp_path):
    path = tmp_path / "noise.bin"
    path.write_bytes(bytes(range(7, 64)))
    assert_one_line_error(run_rsu("decode", str(path)))


def test_no_command_prints_help_and_exits_2():
    proc = run_rsu()
    assert proc.returncode == 2
    assert b"encode" in proc.stderr and b"decode" in proc.stderr


def test_version():
    proc = run_rsu("--version")
    assert proc.returncode == 0 and proc.stdout.startswith(b"rsu ")


def test_every_example_encodes_and_decodes_back():
    """Also a regression test: long hex arguments (the 417-byte MAPEM) were once taken for file names."""
    paths = sorted(EXAMPLES.glob("*.json"))
    assert len(paths) == 6
    for path in paths:
        kind = path.name.split("-")[0]
        enc = run_rsu("encode", kind, str(path))
        assert enc.returncode == 0, (path, enc.stderr)
        dec = run_rsu("decode", enc.stdout.decode().strip())
        assert json.loads(dec.stdout) == json.loads(path.read_text()), path
