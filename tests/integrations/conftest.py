"""Fixtures of the integrations tests: a manual clock, a real services layer (SQLite state directory) with
the example 4-arm MAPEM active, feeds built on them, the test caster process and the RTKLIB caster binary."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from integrations.support import EXAMPLE_TIME, STATION, CasterProcess, example
from rsu.clock import ManualClock
from rsu.integrations.config import ControllerFeedConfig
from rsu.integrations.controller import ControllerFeed
from rsu.services.layer import ServiceLayer, ServicesConfig


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(EXAMPLE_TIME)


@pytest.fixture
def make_layer(tmp_path, codec):
    made = []

    def make(clock, **config) -> ServiceLayer:
        config.setdefault("station_id", STATION)
        layer = ServiceLayer(ServicesConfig(tmp_path / f"state{len(made)}", **config), clock=clock, codec=codec)
        made.append(layer)
        return layer

    yield make
    for layer in made:
        layer.close()


@pytest.fixture
def layer(make_layer, clock) -> ServiceLayer:
    return make_layer(clock)


@pytest.fixture
def mapped(layer) -> ServiceLayer:
    """The services layer with the example MAPEM of intersection 1201 (revision 3) on the air."""
    layer.trigger("rlt", {"payload": example("mapem")})
    layer.due()
    return layer


@pytest.fixture
def make_feed(mapped, clock):
    """ControllerFeed(config dict) on the mapped layer; ages reported go to ``feed.ages``."""

    def make(services=None, **config) -> ControllerFeed:
        config.setdefault("port", None)
        ages: list[tuple[str, float]] = []
        feed = ControllerFeed(
            ControllerFeedConfig.from_dict(config),
            services or mapped,
            clock=clock,
            on_feed_age=lambda ix, age: ages.append((ix, age)),
        )
        feed.ages = ages  # type: ignore[attr-defined]
        return feed

    return make


@pytest.fixture(scope="session")
def str2str() -> str:
    """Path of RTKLIB's str2str (the real NTRIP caster); installs Debian's rtklib when missing and root.

    Unavailable: fails under CI (the caster test must run there), skips with the reason otherwise.
    """
    path = shutil.which("str2str")
    problem = None
    if path is None and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "rtklib"]
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        if r.returncode != 0:  # the package lists may be missing or old
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, text=True, env=env, timeout=600)
            r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        if r.returncode != 0:
            problem = f"apt-get install rtklib failed: {(r.stderr or r.stdout).strip()[-300:]}"
        path = shutil.which("str2str")
    if path is None:
        reason = problem or "RTKLIB str2str is not installed (apt-get install rtklib; needs root to install here)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture
async def caster():
    """The test caster (tests/integrations/caster.py) as a real process: mountpoint RTCM3, user rsu / secret."""
    script = Path(__file__).with_name("caster.py")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        "--mount",
        "RTCM3",
        "--user",
        "rsu",
        "--password",
        "secret",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    c = CasterProcess(proc)
    await c.wait("listening")
    yield c
    await c.close()


@pytest.fixture
def password_file(tmp_path):
    def make(password: str = "secret") -> str:
        path = tmp_path / f"ntrip-{password}.pass"
        path.write_text(password + "\n")
        return str(path)

    return make
