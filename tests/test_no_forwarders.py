"""Issue 12: layers talk through explicit ports; no class in rsu/ forwards unknown attributes."""

from __future__ import annotations

import ast
from pathlib import Path

RSU = Path(__file__).resolve().parent.parent / "rsu"


def forwarders(root: Path) -> list[str]:
    """``file:Class`` for every class body that defines ``__getattr__`` or ``__getattribute__``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and item.name in ("__getattr__", "__getattribute__"):
                        found.append(f"{path.relative_to(root.parent)}:{node.name}")
    return found


def test_no_getattr_forwarding_in_rsu():
    assert forwarders(RSU) == []


def test_the_check_finds_a_forwarder(tmp_path):
    pkg = tmp_path / "rsu"
    pkg.mkdir()
    (pkg / "m.py").write_text("class Facade:\n    def __getattr__(self, name):\n        return name\n")
    assert forwarders(pkg) == ["rsu/m.py:Facade"]
