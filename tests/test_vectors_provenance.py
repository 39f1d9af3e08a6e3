"""tests/vectors/PROVENANCE.md lists every third-party vector with its SHA-256, and the files match."""

from __future__ import annotations

import hashlib
import re

from tests.conftest import VECTORS

PROVENANCE = VECTORS / "PROVENANCE.md"
# a table row: | `relative/path` | what it is | `sha256` |
ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|.*\|\s*`([0-9a-f]{64})`\s*\|\s*$")


def listed() -> dict[str, str]:
    rows: dict[str, str] = {}
    for line in PROVENANCE.read_text().splitlines():
        m = ROW.match(line)
        if m:
            assert m.group(1) not in rows, f"{m.group(1)} is listed twice"
            rows[m.group(1)] = m.group(2)
    return rows


def sha256(path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def test_every_listed_vector_exists_with_its_digest():
    rows = listed()
    assert len(rows) >= 70  # the parser found the tables
    actual = {path: sha256(VECTORS / path) for path in rows}
    assert actual == rows  # None: the file is missing


# a subdirectory with a PROVENANCE.md of its own (pki/: one origin per row) is checked by its own test
OWN_LIST = {p.parent.relative_to(VECTORS).as_posix() for p in VECTORS.glob("*/PROVENANCE.md")}


def test_every_vector_file_is_listed():
    on_disk = {
        p.relative_to(VECTORS).as_posix()
        for p in VECTORS.rglob("*")
        if p.is_file() and p.relative_to(VECTORS).parts[0] not in OWN_LIST
    }
    assert on_disk - set(listed()) == {"PROVENANCE.md"}


def test_every_origin_names_its_commit_and_licence():
    sections = re.split(r"^## ", PROVENANCE.read_text(), flags=re.M)[1:]
    dirs = {p.name for p in VECTORS.iterdir() if p.is_dir()} - OWN_LIST
    assert {s.split("/", 1)[0] for s in sections} == dirs
    for section in sections:
        assert re.search(r"commit\s+`[0-9a-f]{40}`", section), section.splitlines()[0]
        assert re.search(r"^- Licence: \S", section, re.M), section.splitlines()[0]
