"""docs/conformance.md and the tests stay in sync (issue 11, point 10).

* Every test purpose of tests/data/ts103191-2-test-purposes.txt is one row of the matrix, exactly once;
  the matrix has no other row.
* Every test the matrix names exists: the test files are collected by pytest (in a subprocess, so the
  collection sees exactly what a test run sees, parametrized ids included).
* Every collected test whose node id carries a test-purpose identifier is named in that TP's row, and
  carries no identifier the list does not know.
* ``covered`` / ``partial`` rows name at least one test; ``N/A`` rows name none and give a reason.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MATRIX = REPO / "docs" / "conformance.md"
TP_LIST = REPO / "tests" / "data" / "ts103191-2-test-purposes.txt"
# TP_IS_<SERVICE>_<GROUP...>_<BV|BO|TI>_<number or name>; the first one in a node id's name or parameter
TP_ID = re.compile(r"TP_IS_[A-Z]+(?:_[A-Z]+)*_(?:BV|BO|TI)_[0-9A-Za-z]+")
ROW = re.compile(r"^\|\s*`(TP_IS_[^`]+)`[^|]*\|([^|]*)\|([^|]*)\|([^|]*)\|([^|]*)\|\s*$")
STATUSES = {"covered", "partial", "N/A"}


def tp_list() -> list[str]:
    return [line.split()[0] for line in TP_LIST.read_text().splitlines() if line.startswith("TP_")]


def matrix_rows() -> list[dict]:
    rows = []
    for n, line in enumerate(MATRIX.read_text().splitlines(), 1):
        if not line.startswith("| `TP_"):
            continue
        m = ROW.match(line)
        assert m, f"docs/conformance.md:{n}: not a matrix row of 5 cells: {line}"
        tp, _summary, status, tests, note = (g.strip() for g in m.groups())
        rows.append(
            {"line": n, "tp": tp, "status": status, "note": note, "tests": re.findall(r"`([^`]+::[^`]+)`", tests)}
        )
    return rows


@pytest.fixture(scope="module")
def collected() -> set[str]:
    """Node ids of every test in the files the matrix names or that mention a TP identifier."""
    files = {t.split("::")[0] for r in matrix_rows() for t in r["tests"]}
    for path in (REPO / "tests").rglob("test_*.py"):
        if path.name != Path(__file__).name and "TP_IS_" in path.read_text(encoding="utf-8"):
            files.add(str(path.relative_to(REPO)))
    missing = sorted(f for f in files if not (REPO / f).is_file())
    assert not missing, f"the matrix names test files that do not exist: {missing}"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *sorted(files)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ids = {line.strip() for line in proc.stdout.splitlines() if "::" in line}
    assert len(ids) > 100
    return ids


def test_every_test_purpose_is_one_row():
    expected = tp_list()
    assert len(expected) == len(set(expected)), "the TP list repeats an identifier"
    rows = matrix_rows()
    seen: dict[str, int] = {}
    for r in rows:
        assert r["tp"] not in seen, f"{r['tp']} is in rows at lines {seen[r['tp']]} and {r['line']}"
        seen[r["tp"]] = r["line"]
    assert sorted(set(expected) - set(seen)) == [], "TPs without a row"
    assert sorted(set(seen) - set(expected)) == [], "rows for TPs the list does not have"
    assert [r["tp"] for r in rows] == expected, "rows are not in the order of the TP list"


def test_rows_have_a_status_and_tests_or_a_reason():
    for r in matrix_rows():
        where = f"{r['tp']} (line {r['line']})"
        assert r["status"] in STATUSES, f"{where}: status {r['status']!r}"
        if r["status"] == "N/A":
            assert not r["tests"] and len(r["note"]) > 30, f"{where}: N/A needs a reason and no test"
        else:
            assert r["tests"], f"{where}: {r['status']} needs a test"
        if r["status"] == "partial":
            assert r["note"], f"{where}: partial needs a note saying what is left out"


def test_named_tests_exist(collected):
    for r in matrix_rows():
        for t in r["tests"]:
            assert t in collected, f"{r['tp']}: {t} is not a collected test"


def test_tests_named_after_a_tp_are_in_its_row(collected):
    known = set(tp_list())
    listed = {r["tp"]: set(r["tests"]) for r in matrix_rows()}
    carrying = 0
    for node in sorted(collected):
        name = node.split("::", 1)[1]
        found = TP_ID.findall(name)
        for tp in found:
            carrying += 1
            assert tp in known, f"{node} names {tp}, which is not a test purpose of the list"
            assert node in listed[tp], f"{node} names {tp} but its row does not list it"
    assert carrying >= 150


def test_the_id_pattern_reads_the_test_names():
    assert TP_ID.findall("test_TP_IS_TLM_RCV_SEC_BV_01_signed_spatem") == ["TP_IS_TLM_RCV_SEC_BV_01"]
    assert TP_ID.findall("test_TP_IS_TLM_GEN_SSP[TP_IS_TLM_GEN_SSP_BO_03]") == ["TP_IS_TLM_GEN_SSP_BO_03"]
    assert TP_ID.findall("test_TP_IS_TLCR_GEN_SSP_BV_role") == ["TP_IS_TLCR_GEN_SSP_BV_role"]
    assert TP_ID.findall("test_TP_IS_IVI_GEN_GFQ_TI_02") == ["TP_IS_IVI_GEN_GFQ_TI_02"]
    assert TP_ID.findall("test_TLC_two_requests_one_ssem") == []
