"""Shared test fixtures. Tests use real parts: real files, real sockets, real subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "config" / "examples"
VECTORS = REPO / "tests" / "vectors"  # third-party test vectors; origins and digests in PROVENANCE.md


def run_rsu(
    *args: str, input: bytes | None = None, env: dict | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """Run the ``rsu`` CLI in a real subprocess (``python -m rsu``), capturing bytes."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "rsu", *args], input=input, capture_output=True, cwd=REPO, env=full_env, timeout=timeout
    )


@pytest.fixture
def gn_net() -> tuple[str, int]:
    """A GN-UDP network of this test's own: (multicast group in 239.0.0.0/8, free UDP port), so that no
    test hears another test, another test run or an rsu running on the host (tests/netutil.py)."""
    from tests.netutil import group_and_port

    return group_and_port()


@pytest.fixture(scope="session")
def codec():
    from rsu.codec.facilities import get_codec

    return get_codec()
