"""Configuration of the services layer: overrides of the defaults table, refused when they make no sense."""

from __future__ import annotations

import pytest

from services.support import by_service, new_ivim


def test_message_default_override_applies(make_layer, clock):
    layer = make_layer(message_defaults={"ivim": {"repetition_s": 0.5, "traffic_class": 9}})
    layer.trigger("ivi", {"payload": new_ivim()})
    [first] = by_service(layer.due(), "ivi")
    assert first.params.traffic_class == 9
    assert layer.next_deadline() == pytest.approx(clock.now() + 0.5)


@pytest.mark.parametrize(
    "config,message",
    [
        ({"rules": {"tlm_map_check": "sometimes"}}, "tlm_map_check"),
        ({"rules": {"no_such_rule": 1}}, "rules.no_such_rule: unknown setting"),
        ({"rules": {"ivi_id_min": 0}}, "rules.ivi_id_min: expected 1..32767, found 0"),
        ({"message_defaults": {"cam": {"repetition_s": 1}}}, "message_defaults.cam: not a message type"),
        ({"message_defaults": {"ivim": {"speed": 1}}}, "message_defaults.ivim.speed: unknown setting"),
        ({"message_defaults": {"ivim": {"repetition_s": 0}}}, "message_defaults.ivim.repetition_s: expected 0.1..10 s"),
    ],
)
def test_bad_configuration_is_refused(make_layer, config, message):
    with pytest.raises(ValueError) as e:
        make_layer(**config)
    assert message in str(e.value)


def test_known_transports_are_checked(make_layer):
    from rsu.services.errors import ServiceError

    layer = make_layer(known_transports=["gn", "mqtt"])
    layer.trigger("ivi", {"payload": new_ivim(), "dissemination": {"transports": ["mqtt"]}})
    with pytest.raises(ServiceError) as e:
        layer.trigger("ivi", {"payload": new_ivim(), "dissemination": {"transports": ["gn", "lte"]}})
    assert e.value.path == "dissemination.transports[1]" and "unknown transport 'lte'" in e.value.reason
