"""bench/run.py, the one bench command: its table and the README section it refreshes (no timing here)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _load():
    spec = importlib.util.spec_from_file_location("bench_run", REPO / "bench" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_table_gives_each_goal_its_verdict():
    run = _load()
    rows = [
        run.Row("a", "1 µs", "0.5× sign", "≤ 4×", True, "x"),
        run.Row("b", "9 µs", "5.0× sign", "≤ 4×", False, "x"),
        run.Row("c", "2 µs", "1.0× sign", "", None, "x"),
    ]
    lines = run.table(rows).splitlines()
    assert lines[0] == "| what | measured | ratio | goal | met |"
    assert (
        lines[2].endswith("| ≤ 4× | yes |") and lines[3].endswith("| ≤ 4× | **no** |") and lines[4].endswith("|  |  |")
    )


def test_the_readme_has_the_section_the_command_refreshes(tmp_path, monkeypatch):
    run = _load()
    text = (REPO / "README.md").read_text()
    assert text.count(run.BEGIN) == 1 and text.count(run.END) == 1 and text.index(run.BEGIN) < text.index(run.END)
    copy = tmp_path / "README.md"
    copy.write_text(text)
    monkeypatch.setattr(run, "README", copy)
    run.update_readme("| new table |")
    after = copy.read_text()
    assert f"{run.BEGIN}\n| new table |\n{run.END}" in after
    assert after.split(run.BEGIN)[0] == text.split(run.BEGIN)[0] and after.split(run.END)[1] == text.split(run.END)[1]
    copy.write_text("no markers")
    with pytest.raises(SystemExit, match="markers"):
        run.update_readme("| x |")
