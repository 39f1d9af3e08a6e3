"""rsu.api.ui_view, the web view's sans-I/O part: plain data in, plain data out, time given."""

from __future__ import annotations

from rsu.api.ui_view import DropRates, clock_health, expiry, ivim_zones, spat_groups
from rsu.clock import iso_utc
from tests.ops.daemonproc import example

NOW = 1_780_000_000.0


def test_spat_groups_take_the_first_event_of_each_group_per_intersection():
    value = example("spatem-4arm-intersection.json")
    value["spat"]["intersections"].append(
        {
            "id": {"region": 7, "id": 9},
            "revision": 1,
            "status": "0000",
            "states": [{"signalGroup": 4, "state-time-speed": []}],
        }
    )
    groups = spat_groups(value)
    assert list(groups) == ["1201", "7.9"]
    assert groups["1201"]["1"] == {"state": "permissive-Movement-Allowed", "class": "green"}  # not its 2nd event
    assert groups["1201"]["2"] == {"state": "stop-And-Remain", "class": "red"}
    assert groups["7.9"] == {"4": {"state": "unavailable", "class": "unknown"}}


def test_ivim_zones_list_glc_parts_and_their_use():
    zones = ivim_zones(example("ivim-speed-limit.json"))
    assert [(z["zone_id"], z["kind"], z["nodes"], z["used_as"]) for z in zones] == [
        (1, "segment", 4, ["detection"]),
        (2, "segment", 4, ["relevance"]),
    ]
    assert zones[0]["latitude"] == 44.837646 and zones[0]["longitude"] == -0.5768974
    assert ivim_zones({"ivi": {"mandatory": {}}}) == []


def test_expiry_warns_under_the_threshold_only():
    status = {
        "security": "on",
        "authorization_tickets": [
            {"label": "spatem", "hoursToExpiry": 23.5, "usedFor": ["spatem"]},
            {"label": "mapem", "hoursToExpiry": 24.5, "usedFor": []},
        ],
        "pki": {
            "ec": {"hashedId8": "ab", "hoursLeft": 500.0},
            "trust": {
                "ectl": {"sequence": 3, "nextUpdate": iso_utc(NOW + 3600)},
                "roots": {
                    "01": {
                        "name": "root",
                        "ctl": {"sequence": 1, "nextUpdate": iso_utc(NOW + 90000)},
                        "crl": {"sequence": 2, "nextUpdate": iso_utc(NOW - 3600)},
                    }
                },
            },
        },
    }
    out = expiry(status, NOW)
    flagged = {(i["what"], i["warning"]) for i in out["items"]}
    assert flagged == {("AT", True), ("AT", False), ("EC", False), ("ECTL", True), ("CTL", False), ("CRL", True)}
    assert [i["hours_left"] for i in out["items"] if i["what"] in ("ECTL", "CRL")] == [1.0, -1.0]
    assert len(out["warnings"]) == 3 and out["warnings"][0].startswith("AT spatem (spatem): 23.5 h left")
    assert expiry(status, NOW, warn_hours=0.5)["warnings"] == ["CRL root sequence 2: -1.0 h left"]
    status["authorization_tickets"][1]["hoursToExpiry"] = 2.0  # two ATs under the threshold: one line
    assert expiry(status, NOW)["warnings"][0] == "AT: 2 expire within 24 h; the soonest, mapem (not in use): 2.0 h left"
    assert expiry({"security": "on", "authorization_tickets": []}, NOW)["warnings"] == [
        "security is on but no authorization ticket is held"
    ]


def test_drop_rates_over_a_sliding_window():
    rates = DropRates(window_s=10.0, sample_s=1.0)
    assert rates.rates() == {}
    rates.observe(NOW, {("gn", "replay"): 5.0})
    assert rates.rates() == {("gn", "replay"): (5.0, 0.0)}  # one sample: no rate yet
    for i in range(1, 21):
        rates.observe(NOW + i, {("gn", "replay"): 5.0 + 2 * i, ("gn", "ttl"): float(i > 15)})
    total, per_s = rates.rates()[("gn", "replay")]
    assert total == 45.0 and per_s == 2.0  # over the last 10 s only
    assert rates.rates()[("gn", "ttl")] == (1.0, 0.1)
    for k in range(10):  # many observations within one sample period keep the window bounded
        rates.observe(NOW + 20.5 + k * 0.01, {("gn", "replay"): 46.0})
    assert len(rates._samples) <= 12


def _clock(**changes) -> dict:
    """A status ``clock`` part as rsu.health.monitor gives it (synchronized by the kernel, no gpsd)."""
    value = {
        "synchronized": True,
        "source": "kernel",
        "offset_s": -0.0002,
        "error_s": 0.0125,
        "detail": "status=0x2001 state=0",
        "checked_at": "2026-12-03T18:00:00.000Z",
        "policy": "warn",
        "timed_messages": ["spatem", "ssem"],
        "gnss": None,
    }
    value.update(changes)
    return value


def _values(rows: list[dict]) -> dict[str, str]:
    return {r["field"]: r["value"] for r in rows}


def test_clock_health_synchronized_shows_the_figures_and_no_banner():
    out = clock_health(_clock())
    assert out["known"] and out["synchronized"] and out["warning"] is None and out["gnss"] is None
    values = _values(out["rows"])
    assert values["state"] == "synchronized" and values["source"] == "kernel"
    assert values["offset"] == "-0.200 ms" and values["error"] == "12.500 ms"
    assert values["policy"] == "warn" and values["timed"] == "spatem, ssem"
    assert not any(r["warning"] for r in out["rows"])
    assert clock_health(None) == {"known": False, "synchronized": None, "rows": [], "gnss": None, "warning": None}


def test_clock_health_banner_says_what_happens_to_timed_messages():
    stop = clock_health(_clock(synchronized=False, source="none", offset_s=None, error_s=None, policy="stop"))
    values = _values(stop["rows"])
    assert values["state"] == "not synchronized" and values["source"] == "none"
    assert values["offset"] == "unknown" and values["error"] == "unknown"
    assert {r["field"] for r in stop["rows"] if r["warning"]} == {"state", "source"}
    assert stop["warning"] == (
        "Clock NOT synchronized (source none): timed messages (spatem, ssem) are NOT being sent "
        "(clock.unsynchronized: stop)"
    )
    warn = clock_health(_clock(synchronized=False, timed_messages=["spatem"]))
    assert warn["warning"] == (
        "Clock NOT synchronized (source kernel): timed messages (spatem) are sent with an unsynchronized clock "
        "(clock.unsynchronized: warn)"
    )
    assert "NOT being sent" not in warn["warning"]
    assert (
        "no message is timed" in clock_health(_clock(synchronized=False, policy="stop", timed_messages=[]))["warning"]
    )


def test_clock_health_gnss_rows_when_gpsd_is_configured():
    gnss = {
        "connected": True,
        "fix": "3d",
        "mode": 3,
        "latitude": 44.8376461,
        "longitude": -0.5768974,
        "altitude_m": 21.25,
        "satellites_used": 9,
        "satellites_seen": 14,
    }
    values = _values(clock_health(_clock(gnss=gnss))["gnss"])
    assert values == {
        "gnss-connected": "connected",
        "gnss-fix": "3D",
        "gnss-position": "44.8376461, -0.5768974, 21.2 m",
        "gnss-satellites": "9 (of 14 seen)",
    }
    lost = {"connected": False, "mode": 0, "latitude": None, "longitude": None, "satellites_used": None}
    rows = clock_health(_clock(gnss=lost))["gnss"]
    assert _values(rows) == {
        "gnss-connected": "not connected",
        "gnss-fix": "unknown",
        "gnss-position": "no position",
        "gnss-satellites": "unknown",
    }
    assert {r["field"] for r in rows if r["warning"]} == {"gnss-connected", "gnss-fix"}
    assert _values(clock_health(_clock(gnss={**gnss, "mode": 2}))["gnss"])["gnss-fix"] == "2D"
    assert _values(clock_health(_clock(gnss={**gnss, "mode": 1}))["gnss"])["gnss-fix"] == "no fix"
