"""Fixtures of the services tests: a manual clock, a real SQLite state directory, the services facade."""

from __future__ import annotations

import pytest

from rsu.clock import ManualClock
from rsu.services.layer import ServiceLayer, ServicesConfig
from services.support import PROVIDER, START, STATION


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def state_dir(tmp_path):
    return tmp_path / "state"


@pytest.fixture
def make_layer(state_dir, clock, codec):
    """Build a ServiceLayer on the test's state directory (several calls = restarts of the daemon)."""
    made: list[ServiceLayer] = []

    def make(permission_check=None, **config) -> ServiceLayer:
        config.setdefault("station_id", STATION)
        config.setdefault("ivi_provider", PROVIDER)
        layer = ServiceLayer(
            ServicesConfig(state_dir, **config), clock=clock, permission_check=permission_check, codec=codec
        )
        made.append(layer)
        return layer

    yield make
    for layer in made:
        layer.close()


@pytest.fixture
def layer(make_layer) -> ServiceLayer:
    return make_layer()
