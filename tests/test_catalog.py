"""rsu/catalog.py is the one place that states a message type's identity: the numbers that name it on
the air (ITS-AID, BTP port) and its SSP layout appear nowhere else in rsu/ as literals, and what other
modules list per message type or service is derived from the table."""

from __future__ import annotations

import io
import tokenize
from pathlib import Path

from rsu import catalog
from rsu.security import ssp
from rsu.services import defaults

RSU = Path(__file__).resolve().parent.parent / "rsu"

# Numbers that name a message type (or a PKI message) and nothing else in this code base. The
# messageIDs (4, 5, 6, 9, 10, 13) are too small to tell from other numbers and are not looked for.
IDENTITY_NUMBERS = (
    {m.its_aid for m in catalog.MESSAGES}
    | {m.btp_port for m in catalog.MESSAGES}
    | {catalog.ITS_AID_CRL, catalog.ITS_AID_SCR, catalog.ITS_AID_CTL}
)

# Documented exceptions: (file relative to rsu/, number) pairs that are not a restatement.
ALLOWED: set[tuple[str, int]] = {
    ("pki/trustlist.py", 0x8A),  # a COER choice tag (extension alternative 10), equal to MAPEM's ITS-AID by chance
}


def _number_literals(path: Path) -> list[tuple[int, int]]:
    """(line, value) of every integer literal in the code (comments and strings are not code)."""
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if tok.type == tokenize.NUMBER:
            try:
                out.append((tok.start[0], int(tok.string, 0)))
            except ValueError:  # a float or complex literal
                continue
    return out


def test_identity_numbers_appear_as_literals_only_in_the_catalog():
    found = []
    for path in sorted(RSU.rglob("*.py")):
        rel = path.relative_to(RSU).as_posix()
        if rel == "catalog.py" or rel.startswith("codec/generated"):
            continue
        for line, value in _number_literals(path):
            if value in IDENTITY_NUMBERS and (rel, value) not in ALLOWED:
                found.append(f"rsu/{rel}:{line}: {value}")
    assert found == [], "identity numbers restated outside rsu/catalog.py:\n" + "\n".join(found)


def test_the_scan_finds_a_restated_number(tmp_path):
    """The check above can fail: a literal ITS-AID in code is found, one in a comment is not."""
    f = tmp_path / "x.py"
    f.write_text(f"PSID = {catalog.MAPEM.its_aid}  # {catalog.SPATEM.its_aid}\n")
    assert _number_literals(f) == [(1, catalog.MAPEM.its_aid)]


def test_ssp_layouts_and_defaults_come_from_the_catalog():
    for kind in catalog.MESSAGES:
        lay = ssp.layout(kind)
        assert lay.kind is kind and (lay.version, lay.length, lay.permissions, lay.provider_octets) == (
            kind.ssp.version,
            kind.ssp.length,
            kind.ssp.permissions,
            kind.ssp.provider_octets,
        )
        assert lay.its_aid == kind.its_aid and lay.service == kind.ssp.label
        d = defaults.MESSAGE_DEFAULTS[kind.name]
        assert d.kind is kind and d.repetition_s == kind.repetition_s
        assert defaults.SERVICE_ALIASES[kind.name] == kind.service.lower()
        assert kind in catalog.SERVICES[kind.service.lower()]
    assert set(ssp.BY_ITS_AID) == {m.its_aid for m in catalog.MESSAGES}


def _table_rows(text: str, first_cells: set[str]) -> dict[str, list[str]]:
    """Markdown table rows whose first (or second) cell names a message, by message name."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        for cell in cells[:2]:
            if cell in first_cells:
                rows[cell] = cells
    return rows


def test_readme_identifier_table_states_the_catalog():
    """The README's identifier table is the catalog's, row for row (docs restate; the catalog decides)."""
    readme = (RSU.parent / "README.md").read_text()
    rows = _table_rows(readme, {m.pdu for m in catalog.MESSAGES})
    assert {pdu: cells[1:5] for pdu, cells in rows.items()} == {
        m.pdu: [str(m.message_id), str(m.protocol_version), str(m.its_aid), str(m.btp_port)] for m in catalog.MESSAGES
    }


def test_ssp_doc_table_states_the_catalog():
    """docs/ssp.md's table gives each message's label, ITS-AID, SSP version and length as the catalog does."""
    doc = (RSU.parent / "docs" / "ssp.md").read_text()
    rows = _table_rows(doc, {m.pdu for m in catalog.MESSAGES})
    assert {pdu: cells[:5] for pdu, cells in rows.items()} == {
        m.pdu: [m.ssp.label, m.pdu, str(m.its_aid), str(m.ssp.version), str(m.ssp.length)] for m in catalog.MESSAGES
    }
