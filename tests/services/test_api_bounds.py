"""The API refuses every out-of-range number of a request with the field path, never with a 500
(the config side of the same ranges: tests/ops/test_config_bounds.py)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    "dissemination, path",
    [
        ({"repetition_interval_s": 0}, "dissemination.repetition_interval_s"),
        ({"repetition_interval_s": 0.01}, "dissemination.repetition_interval_s"),
        ({"repetition_interval_s": 1e308}, "dissemination.repetition_interval_s"),
        ({"lifetime_s": 0}, "dissemination.lifetime_s"),
        ({"hop_limit": 2**70}, "dissemination.hop_limit"),
        ({"priority": -1}, "dissemination.priority"),
        ({"start": 1e300}, "dissemination.start"),  # was an OverflowError: HTTP 500
        ({"stop": 1e300}, "dissemination.stop"),
        ({"start": -5}, "dissemination.start"),
        ({"stop": "9999-12-31T23:59:59Z"}, "dissemination.stop"),
        ({"repetition_interval_s": float("inf")}, "dissemination.repetition_interval_s"),  # JSON 1e400
    ],
)
def test_api_refuses_out_of_range_numbers_with_the_field_path(layer, dissemination, path):
    from rsu.api.app import STATUS
    from rsu.services.errors import ServiceError
    from services.support import new_ivim

    with pytest.raises(ServiceError) as e:
        layer.trigger("ivi", {"payload": new_ivim(), "dissemination": dissemination})
    assert e.value.path == path and STATUS[e.value.code] in (400, 422), e.value
    assert layer.list() == []
    if dissemination.get("repetition_interval_s") == float("inf"):
        assert "finite" in e.value.reason, e.value.reason  # not "found float"
