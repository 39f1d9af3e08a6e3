"""No file of the repository names a path that exists only on some developer's or build machine.

Such a path (a checkout location, a home directory, a pytest or mkdtemp temporary directory) works
on the machine that wrote it and nowhere else: a test that reads it fails in a fresh clone, a doc
that shows it misleads. Paths every installation has or creates are fine: /etc/rsu, /var/lib/rsu,
/usr/local/bin, /opt/rsu, /tmp/ssem.uper in an example command.

Checked: every file git tracks, plus new files not ignored (so the test catches them before the
commit), as bytes (a binary vector could embed a path too).
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

from tests.conftest import REPO

# A path starts at a boundary: not inside a word or another path ("AA/root", "a/home/b").
START = r"(?:(?<![\w.~/-])|(?<=file://))"
# Written so that this file does not match itself: "[k]" matches "k", the text "[k]" does not.
MACHINE_PATHS = [
    r"/wor[k]/",  # the build machine's workspace
    r"/roo[t](?:/|\b)",  # root's home directory
    r"/hom[e]/[^/\s'\"`]+",  # a user's home directory (/home alone, as in ProtectHome docs, is fine)
    r"/User[s]/[^/\s'\"`]+",  # macOS home directories
    r"[A-Za-z]:\\User[s]\\",  # Windows home directories
    r"/tmp/pytest-o[f]-",  # pytest's tmp_path root
    r"/tmp/tm[p][\w]{6,}",  # tempfile.mkdtemp() / NamedTemporaryFile names
    r"/tmp/bash_job[s]",  # agent job directories
]


def machine_specific() -> list[str]:
    """This machine's own locations: the checkout, the directory holding it, the home directory.
    Only paths at least two levels deep (a checkout at /src must not flag every mention of /src)."""
    here = {str(REPO), str(REPO.parent), str(Path.home()), os.path.realpath(REPO), tempfile.gettempdir()}
    return sorted(re.escape(p) + r"(?:/|\b)" for p in here if len(Path(p).parts) >= 3)


# the rest of the path, so that a failure shows all of it
PATTERN = re.compile(START + "(?:" + "|".join(MACHINE_PATHS + machine_specific()) + ")" + r"[^\s'\"`<>()\[\]{},;]*")


def repository_files() -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
        names = [n for n in out.decode().split("\0") if n]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout (an unpacked sdist)
        skip = {".git", ".venv", "__pycache__", ".pytest_cache", ".hypothesis", "build", "dist"}
        names = [
            str(p.relative_to(REPO))
            for p in REPO.rglob("*")
            if p.is_file()
            and not skip & set(p.relative_to(REPO).parts)
            and not any(part.endswith(".egg-info") for part in p.parts)
        ]
    return [REPO / n for n in names if (REPO / n).is_file()]


def offending_lines(text: str) -> list[str]:
    return [f"{n}: {m.group(0)}" for n, line in enumerate(text.splitlines(), 1) for m in PATTERN.finditer(line)]


def test_no_file_names_a_path_of_a_build_machine():
    files = repository_files()
    assert len(files) > 100 and REPO / "README.md" in files
    found = {
        str(p.relative_to(REPO)): hits for p in files if (hits := offending_lines(p.read_bytes().decode("latin-1")))
    }
    assert found == {}, "absolute paths that exist only on a build machine"


def test_the_check_flags_machine_paths_and_not_installation_paths():
    flagged = [
        "/" + "work/shared/reference/vectors",
        "see /" + "root/.cache/rsu",
        "'/" + "home/alice/rsu'",
        "/" + "Users/bob/src",
        "file:///" + "work/x",
        "/tmp/" + "pytest-of-root/pytest-3/x",
        "/tmp/" + "tmpa1b2c3d4/f",
        "C:\\" + "Users\\carol\\rsu",
        str(REPO / "tests"),
        str(Path.home() / "x"),
    ]
    fine = [
        "/etc/rsu/rsu.yaml",
        "/var/lib/rsu",
        "/usr/local/bin/rsu",
        "/opt/rsu/bin/pip",
        "/tmp/ssem.uper",
        "ProtectHome=true keeps /home out of reach",
        "an AA/root certificate",
        "/run/rsu",
        "~/.local/state/rsu",
        "/usr/share/rsu",
    ]
    assert [s for s in flagged if not PATTERN.search(s)] == []
    assert [s for s in fine if PATTERN.search(s)] == []
