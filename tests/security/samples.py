"""Sample facilities PDU values (asn1tools form) for the six message types, with and without
the content that needs each SSP permission. Built fresh on every call (tests mutate them)."""

from __future__ import annotations

HDR = {"stationID": 4711}


def _hdr(version: int, message_id: int) -> dict:
    return {"protocolVersion": version, "messageID": message_id, **HDR}


def spatem(*, prioritization: bool = False, assist_intersection: bool = False, assist_movement: bool = False) -> dict:
    state = {"signalGroup": 1, "state-time-speed": [{"eventState": "protected-Movement-Allowed"}]}
    if assist_movement:
        state["maneuverAssistList"] = [{"connectionID": 1, "pedBicycleDetect": False}]
    ist = {
        "id": {"id": 1201},
        "revision": 3,
        "status": (b"\x00\x00", 16),
        "states": [state, {"signalGroup": 2, "state-time-speed": [{"eventState": "stop-And-Remain"}]}],
    }
    if assist_intersection:
        ist["maneuverAssistList"] = [{"connectionID": 2, "queueLength": 20}]
    if prioritization:
        ist["regional"] = [
            {
                "regionId": 3,
                "regExtValue": {
                    "activePrioritizations": [{"stationID": 99, "priorState": "granted", "signalGroup": 2}]
                },
            }
        ]
    return {"header": _hdr(2, 4), "spat": {"intersections": [ist]}}


def _lane() -> dict:
    return {
        "laneID": 1,
        "laneAttributes": {
            "directionalUse": (b"\x80", 2),
            "sharedWith": (b"\x00\x00", 10),
            "laneType": ("vehicle", (b"\x00", 8)),
        },
        "nodeList": (
            "nodes",
            [{"delta": ("node-XY1", {"x": 100, "y": 100})}, {"delta": ("node-XY1", {"x": 200, "y": 200})}],
        ),
    }


def mapem(*, intersections: bool = True, road_segments: bool = False) -> dict:
    m: dict = {"msgIssueRevision": 1}
    if intersections:
        m["intersections"] = [
            {"id": {"id": 1201}, "revision": 1, "refPoint": {"lat": 524625984, "long": 107220080}, "laneSet": [_lane()]}
        ]
    if road_segments:
        m["roadSegments"] = [
            {
                "id": {"id": 7},
                "revision": 1,
                "refPoint": {"lat": 524625984, "long": 107220080},
                "roadLaneSet": [_lane()],
            }
        ]
    return {"header": _hdr(2, 5), "map": m}


def provider(country_bits: int = 0b0101110011, issuer: int = 31) -> dict:
    """GB/31 by default."""
    return {"countryCode": ((country_bits << 6).to_bytes(2, "big"), 10), "providerIdentifier": issuer}


def iso14823(category: tuple) -> dict:
    return {
        "code": (
            "iso14823",
            {
                "pictogramCode": {
                    "serviceCategoryCode": category,
                    "pictogramCategoryCode": {"nature": 5, "serialNumber": 57},
                }
            },
        )
    }


def ivim(
    *,
    signs: list | None = None,
    text: bool = False,
    lane_status: bool = False,
    rcc: bool = False,
    layout: bool = False,
    status: int = 0,
    prov: dict | None = None,
) -> dict:
    signs = signs if signs is not None else [iso14823(("trafficSignPictogram", "regulatory"))]
    optional = []
    if signs:
        part = {"iviType": 0, "roadSignCodes": signs}
        if lane_status:
            part["laneStatus"] = 1
        optional.append(("giv", [part]))
    if text:
        optional.append(
            (
                "tc",
                [
                    {
                        "relevanceZoneIds": [1],
                        "text": [{"language": (b"\x00\x00", 10), "textContent": "Stau"}],
                        "data": b"",
                    }
                ],
            )
        )
    if rcc:
        optional.append(
            (
                "rcc",
                [
                    {
                        "relevanceZoneIds": [1],
                        "roadType": "urban-NoStructuralSeparationToOppositeLanes",
                        "laneConfiguration": [{"laneNumber": 1, "direction": 0, "laneType": 0, "laneStatus": 0}],
                    }
                ],
            )
        )
    if layout:
        optional.append(
            (
                "lac",
                {
                    "layoutId": 1,
                    "width": 100,
                    "height": 50,
                    "layoutComponents": [
                        {"layoutComponentId": 1, "height": 10, "width": 10, "x": 10, "y": 10, "textScripting": 0}
                    ],
                },
            )
        )
    ivi = {"mandatory": {"serviceProviderId": prov or provider(), "iviIdentificationNumber": 1, "iviStatus": status}}
    if optional:
        ivi["optional"] = optional
    return {"header": _hdr(2, 6), "ivi": ivi}


def srem(*, role: str | None = "publicTransport", requests: bool = True) -> dict:
    srm: dict = {"second": 1000, "requestor": {"id": ("stationID", 77)}}
    if role is not None:
        srm["requestor"]["type"] = {"role": role}
    if requests:
        srm["requests"] = [
            {
                "request": {
                    "id": {"id": 1201},
                    "requestID": 1,
                    "requestType": "priorityRequest",
                    "inBoundLane": ("lane", 1),
                }
            }
        ]
    return {"header": _hdr(2, 9), "srm": srm}


def ssem() -> dict:
    return {
        "header": _hdr(2, 10),
        "ssm": {
            "second": 1000,
            "status": [
                {
                    "sequenceNumber": 1,
                    "id": {"id": 1201},
                    "sigStatus": [{"inboundOn": ("lane", 1), "status": "granted"}],
                }
            ],
        },
    }


def rtcmem() -> dict:
    return {"header": _hdr(1, 13), "rtcmc": {"msgCnt": 1, "rev": "rtcmRev3", "msgs": [b"\xd3\x00\x13" + bytes(19)]}}


ALL = {"spatem": spatem, "mapem": mapem, "ivim": ivim, "srem": srem, "ssem": ssem, "rtcmem": rtcmem}


def vienna() -> dict:
    return {"code": ("viennaConvention", {"roadSignClass": 2, "roadSignCode": 14, "vcOption": 1})}


def itis() -> dict:
    return {"code": ("itisCodes", 268)}
