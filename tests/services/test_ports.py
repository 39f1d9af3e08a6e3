"""The services' ports: CurrentServices passes every call to the layer current at that moment, and
ApiServices counts IS_Triggering requests on top of it. A swap of the layer (what a daemon reload does:
the old layer closed, a new one on the same store and the same received hub) is followed by every
method, and a subscription taken before the swap sees the new layer's events."""

from __future__ import annotations

from rsu.api.services import ApiServices
from rsu.services.layer import ServiceLayer, ServicesConfig
from rsu.services.ports import CurrentServices
from services.support import PROVIDER, STATION, example, new_ivim


def test_a_swapped_layer_is_followed_by_every_method_and_subscriptions_stay(state_dir, clock, codec):
    def build(hub=None) -> ServiceLayer:
        return ServiceLayer(
            ServicesConfig(state_dir, station_id=STATION, ivi_provider=PROVIDER), clock=clock, codec=codec, hub=hub
        )

    current = [build()]
    counted: list[tuple[str, str, str]] = []
    services = CurrentServices(lambda: current[0])
    api = ApiServices(services, on_request=lambda *labels: counted.append(labels), status=lambda: {"up": 1})
    sub = api.subscribe(["ivi"], ["ended"])
    mapem = api.trigger("rlt", {"payload": example("mapem")})
    ivim = api.trigger("ivi", {"payload": new_ivim()})
    old = current[0]
    try:
        old.close()
        current[0] = build(hub=old.hub)  # the reload: same store, same hub, a new layer object
        assert current[0] is not old
        assert [e["id"] for e in api.list()] == [mapem["id"], ivim["id"]]  # restored by the new layer
        assert api.get("rlt", mapem["id"])["state"] == "active"
        assert services.stats()["entries"]["rlt"] == 1 and api.stats() == {"up": 1}
        assert api.update("ivi", ivim["id"], {"payload": new_ivim()})["id"] == ivim["id"]
        assert api.terminate("ivi", ivim["id"], {"mode": "stop"})["terminated"] == "stopped"
        events = sub.drain()  # published by the new layer on the hub the subscription lives in
        assert [(e["type"], e["service"], e["entry"]) for e in events] == [("ended", "ivi", ivim["id"])]
        assert api.pending_requests() == []
        assert counted == [
            ("RLT", "mapem", "trigger"),
            ("IVI", "ivim", "trigger"),
            ("IVI", "ivim", "update"),
            ("IVI", "ivim", "terminate"),
        ]
    finally:
        current[0].close()


def test_states_counts_what_list_shows(layer, clock):
    """ServiceLayer.states (the daemon's active-messages gauge, read every second) counts the (message, state)
    of every entry exactly as list() shows them: active, pending (start in the future), terminating, idle."""
    from collections import Counter

    layer.trigger("rlt", {"payload": example("mapem")})
    layer.trigger("ivi", {"payload": new_ivim()})
    layer.trigger("ivi", {"payload": new_ivim(), "dissemination": {"start": clock.now() + 60}})
    terminated = layer.trigger("ivi", {"payload": new_ivim()})["id"]
    layer.terminate("ivi", terminated)  # an IVIM is cancelled: terminating for a while
    spat = example("spatem")
    layer.trigger("tlm", {"payload": spat})
    want = Counter((e["message"], e["state"]) for e in layer.list())
    assert {state for _, state in want} >= {"active", "pending", "terminating"}
    assert layer.states() == want
    clock.advance(120)  # the pending one starts, the terminating one ends
    assert layer.states() == Counter((e["message"], e["state"]) for e in layer.list())
