"""tests/vectors/pki/PROVENANCE.md lists every vector file with its SHA-256, and nothing else is there."""

from __future__ import annotations

import hashlib

from tests.pki.helpers import VECTORS


def _table() -> dict[str, str]:
    rows = {}
    for line in (VECTORS / "PROVENANCE.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0] not in ("file",) and not cells[0].startswith("---"):
            rows[cells[0]] = cells[5]
    return rows


def test_every_vector_matches_its_digest():
    table = _table()
    assert len(table) >= 14  # the parser found the table
    for name, digest in table.items():
        assert hashlib.sha256((VECTORS / name).read_bytes()).hexdigest() == digest, name


def test_no_unlisted_vector_files():
    present = {str(p.relative_to(VECTORS)) for p in VECTORS.rglob("*") if p.is_file()} - {"PROVENANCE.md"}
    assert present == set(_table())
