"""The files in config/examples, triggered as a user copies them, go on the air today and a year from
today: no example carries a time that expires (the IVIM example expired on 2025-11-14 once)."""

from __future__ import annotations

import time

import pytest

from services.support import by_service, example

YEAR = 365 * 86400.0
# service -> example files triggered, in this order (the SPATEM needs the MAPEM of its intersection)
TRIGGERS = (("rlt", "mapem"), ("tlm", "spatem"), ("ivi", "ivim"), ("tlc", "srem"), ("gpc", "rtcmem"))


@pytest.mark.parametrize("ahead", [0.0, YEAR, 2 * YEAR], ids=["today", "in-a-year", "in-two-years"])
def test_every_example_goes_on_the_air(make_layer, clock, ahead):
    clock.set(time.time() + ahead)
    layer = make_layer()
    for service, name in TRIGGERS:
        answer = layer.trigger(service, {"payload": example(name)})
        assert not [w for w in answer.get("warnings", []) if "valid" in w], (name, answer["warnings"])
    sent = layer.due()
    for service, name in TRIGGERS:
        assert by_service(sent, service), f"{name} example not sent"
    clock.advance(86400)  # still on the air a day later (the repeated ones)
    states = {e["service"]: e["state"] for e in layer.list()}
    assert all(states[s] == "active" for s in ("rlt", "ivi", "gpc")), states
    sent = layer.due()
    assert {s for s in ("rlt", "ivi", "gpc") if by_service(sent, s)} == {"rlt", "ivi", "gpc"}
