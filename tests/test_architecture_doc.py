"""docs/architecture.md names real code: every ``file.py:Name`` or ``file.py:Class.member`` reference it makes
is a file of the repository that defines that function or class (the member in that class's own body), and
every ``rsu/`` folder or module it names exists. Renaming a step of the send or receive path fails here until
the page follows."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

from tests.conftest import REPO

DOC = REPO / "docs" / "architecture.md"
REFERENCE = re.compile(r"\b((?:rsu|tests)/[\w/]+\.py):([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)?)")
PATH = re.compile(r"\b(rsu/[\w/]*\w(?:\.py)?/?)")


def references(text: str) -> list[tuple[str, str]]:
    return sorted(set(REFERENCE.findall(text)))


@functools.cache
def definitions(path: Path) -> dict[str, set[str]]:
    """{top-level function or class name: names its body defines (methods, properties, class attributes)}."""
    tree = ast.parse(path.read_text(), str(path))
    out: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out[node.name] = set()
        elif isinstance(node, ast.ClassDef):
            members = set()
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    members.add(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    members.add(item.target.id)  # a dataclass field
            out[node.name] = members
    return out


def missing(ref: tuple[str, str]) -> str | None:
    """Why a reference does not resolve, or None."""
    file, name = ref
    path = REPO / file
    if not path.is_file():
        return f"{file}: no such file"
    top, _, member = name.partition(".")
    defined = definitions(path)
    if top not in defined:
        return f"{file}: defines no function or class {top!r}"
    if member and member not in defined[top]:
        return f"{file}: class {top} defines no {member!r}"
    return None


def test_the_doc_names_the_path_of_both_messages():
    """The page exists, is linked from the README, and walks both paths with enough steps to follow."""
    text = DOC.read_text()
    assert "## A SPATEM from trigger to datagram" in text and "## An SREM from datagram to application" in text
    assert len(references(text)) >= 40
    assert "docs/architecture.md" in (REPO / "README.md").read_text()


def test_every_file_function_reference_exists():
    problems = [p for ref in references(DOC.read_text()) if (p := missing(ref))]
    assert problems == []


def test_every_folder_and_module_named_exists():
    text = DOC.read_text()
    paths = sorted(set(PATH.findall(text)))
    assert {
        "rsu/codec/",
        "rsu/security/",
        "rsu/services/",
        "rsu/pipeline/",
        "rsu/transports/",
        "rsu/integrations/",
        "rsu/api/",
        "rsu/ops/",
        "rsu/pki/",
        "rsu/cli/",
        "rsu/catalog.py",
    } <= set(paths)
    assert [p for p in paths if not (REPO / p).exists()] == []


@pytest.mark.parametrize(
    "ref, reason",
    [
        (("rsu/pipeline/send.py", "SendPipeline.sendd"), "class SendPipeline defines no 'sendd'"),
        (("rsu/pipeline/send.py", "NoSuchThing"), "defines no function or class 'NoSuchThing'"),
        (("rsu/pipeline/sned.py", "SendPipeline"), "no such file"),
        (("rsu/services/tlm.py", "TlmEntity.check_permission"), "class TlmEntity defines no"),  # inherited: not here
    ],
)
def test_a_wrong_reference_is_caught(ref, reason):
    """The checker itself: a typo, a missing name, a wrong file, a member that lives in another file."""
    problem = missing(ref)
    assert problem is not None and reason in problem


def test_the_reference_pattern_reads_the_doc_forms():
    assert references("see `rsu/a/b.py:C.d`, then `rsu/x.py:f` and tests/s/l.py:Link.") == [
        ("rsu/a/b.py", "C.d"),
        ("rsu/x.py", "f"),
        ("tests/s/l.py", "Link"),
    ]
