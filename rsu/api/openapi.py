"""The OpenAPI 3 document of the API (hand-written; served at ``/openapi.json``)."""

from __future__ import annotations

import copy
from typing import Any

from rsu import __version__, catalog
from rsu.services.defaults import MESSAGE_DEFAULTS, SERVICE_ALIASES
from rsu.services.errors import CODES


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "400": _json(_ref("Error"), "bad_request: the body is not a JSON object"),
    "403": _json(_ref("Error"), "ssp_not_permitted: the content needs a permission the ATs do not grant"),
    "404": _json(_ref("Error"), "unknown_service, unknown_id or unknown_request"),
    "409": _json(
        _ref("Error"), "revision_mismatch, signal_group_mismatch, already_active, id_in_use, id_exhausted or not_active"
    ),
    "422": _json(_ref("Error"), "validation: a field does not fit the schema or the service rules"),
    "503": _json(_ref("Error"), "store_failure or capacity: nothing was applied"),
}

# codes of the gate and the admin routes (rsu.api.guard)
GATE_CODES = (
    "unauthenticated",
    "forbidden",
    "banned",
    "rate_limited",
    "audit_failure",
    "reload_rejected",
    "not_reloadable",
    "unknown_token",
    "no_pki_client",
)

_SERVICE = {
    "name": "service",
    "in": "path",
    "required": True,
    "description": f"{', '.join(catalog.SERVICES)} (or a message name: {', '.join(catalog.BY_NAME)})",
    "schema": {"type": "string", "enum": sorted(SERVICE_ALIASES)},
}
_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "entry id, URL-encoded: '1201', '7.1201+1202', 'FR57-310', 'ssem-1201', 'default'",
}

_REPETITION = "; ".join(
    f"{name}: default {d.repetition_s} s, {d.min_interval_s}..{d.max_interval_s} s"
    if d.repetition_s is not None
    else f"{name}: not repeated (rate limit {1 / d.min_interval_s:g} Hz)"
    for name, d in MESSAGE_DEFAULTS.items()
)

_DOC = {
    "openapi": "3.0.3",
    "info": {
        "title": "rsu IS_Triggering / IS_DataProviding API",
        "version": __version__,
        "description": (
            "ETSI TS 103 301 facilities services of the rsu daemon. Trigger, update and terminate messages of the "
            "TLM (SPATEM), RLT (MAPEM), IVI (IVIM), TLC (SSEM, SREM relay) and GPC (RTCMEM) services; list the "
            "store-and-repeat table; receive verified messages as server-sent events. A request is applied "
            "entirely or not at all. Payloads are the JER JSON of the whole PDU (the ItsPduHeader may be left "
            "out, service-owned fields such as revisions, identifiers and timestamps may be left out) or the hex "
            "of its UPER encoding. Bound to 127.0.0.1 by default."
        ),
    },
    "paths": {
        "/v1/messages": {
            "get": {
                "summary": "List every active entry (all services)",
                "parameters": [{"name": "service", "in": "query", "schema": {"type": "string"}}],
                "responses": {
                    "200": _json(
                        {"type": "object", "properties": {"messages": {"type": "array", "items": _ref("Entry")}}},
                        "the store-and-repeat table",
                    )
                },
            }
        },
        "/v1/{service}/messages": {
            "parameters": [_SERVICE],
            "get": {
                "summary": "List the service's active entries",
                "responses": {
                    "200": _json(
                        {"type": "object", "properties": {"messages": {"type": "array", "items": _ref("Entry")}}},
                        "active entries",
                    ),
                    "404": _ERRORS["404"],
                },
            },
            "post": {
                "summary": "Trigger: a new message (SPATEM: a new state of the intersection)",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("Request")}}},
                "responses": {"201": _json(_ref("Answer"), "the message identification"), **_ERRORS},
            },
        },
        "/v1/{service}/messages/{id}": {
            "parameters": [_SERVICE, _ID],
            "get": {
                "summary": "One entry with its payload (JER and UPER hex)",
                "responses": {"200": _json(_ref("Entry"), "the entry"), "404": _ERRORS["404"]},
            },
            "put": {
                "summary": "Update / replace: new content and/or dissemination parameters",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("Request")}}},
                "responses": {"200": _json(_ref("Answer"), "the message identification"), **_ERRORS},
            },
            "delete": {
                "summary": "Terminate / delete",
                "parameters": [
                    {
                        "name": "mode",
                        "in": "query",
                        "schema": {"type": "string", "enum": ["cancellation", "stop"]},
                        "description": "IVI: cancellation (default: an IVIM with iviStatus cancellation is "
                        "repeated, then the entry ends) or stop (silence)",
                    },
                    {
                        "name": "request",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "TLC SSEM: end only this request's answer",
                    },
                ],
                "responses": {"200": _json(_ref("Answer"), "terminated"), **_ERRORS},
            },
        },
        "/v1/{service}/messages/{id}/terminate": {
            "parameters": [_SERVICE, _ID],
            "post": {
                "summary": 'Terminate with a body ({"mode": ...} or {"request": ...})',
                "requestBody": {"content": {"application/json": {"schema": _ref("Termination")}}},
                "responses": {"200": _json(_ref("Answer"), "terminated"), **_ERRORS},
            },
        },
        "/v1/tlc/requests": {
            "get": {
                "summary": "Pending SREM requests (the keys a TLC decision refers to)",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"requests": {"type": "array", "items": _ref("PendingRequest")}},
                        },
                        "pending requests",
                    )
                },
            }
        },
        "/v1/received": {
            "get": {
                "summary": "IS_DataProviding: received messages as server-sent events",
                "description": "One event per received message that passed verification and SSP checks "
                "(event: received), and per ended entry (event: ended). data is one JSON object "
                "(ReceivedEvent). Reconnect with Last-Event-ID to resume from the recent history. "
                "Duplicate IVIMs (same provider, number and timeStamp) are not delivered.",
                "parameters": [
                    {
                        "name": "service",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "filter: service or message names, repeated or comma-separated",
                    },
                    {"name": "type", "in": "query", "schema": {"type": "string", "enum": ["received", "ended"]}},
                    {"name": "last_id", "in": "query", "schema": {"type": "integer"}},
                    {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": {
                        "description": "event stream",
                        "content": {"text/event-stream": {"schema": _ref("ReceivedEvent")}},
                    },
                    "404": _ERRORS["404"],
                },
            }
        },
        "/v1/status": {
            "get": {
                "summary": "Counters (entries, scheduler, deliveries)",
                "responses": {"200": _json({"type": "object"}, "counters")},
            }
        },
        "/openapi.json": {
            "get": {"summary": "This document", "responses": {"200": _json({"type": "object"}, "OpenAPI 3")}}
        },
    },
    "components": {
        "schemas": {
            "Request": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "payload": {
                        "oneOf": [
                            {"type": "object", "description": "JER JSON of the whole PDU"},
                            {"type": "string", "description": "hex of the UPER encoding"},
                        ]
                    },
                    "dissemination": _ref("Dissemination"),
                    "decision": _ref("Decision"),
                    "rtcm": {"type": "array", "items": {"type": "string"}, "description": "GPC: RTCM 3 frames (hex)"},
                    "stream": {"type": "string", "description": "GPC: stream name (entry id), default 'default'"},
                },
            },
            "Dissemination": {
                "type": "object",
                "additionalProperties": False,
                "description": "How the message is sent. On update, members given replace the stored ones; null resets "
                "a member to its default. Repetition: " + _REPETITION,
                "properties": {
                    "transports": {"type": "array", "items": {"type": "string"}},
                    "destination": {
                        "nullable": True,
                        "description": "GeoBroadcast area; null = single-hop broadcast; "
                        "absent or 'auto' = derived from the content",
                        "oneOf": [_ref("GeoArea"), {"type": "string", "enum": ["auto"]}],
                    },
                    "traffic_class": {"type": "integer", "minimum": 0, "maximum": 255},
                    "lifetime_s": {"type": "number", "minimum": 0.05, "maximum": 6300},
                    "hop_limit": {"type": "integer", "minimum": 1, "maximum": 255},
                    "repetition_interval_s": {"type": "number"},
                    "start": {
                        "nullable": True,
                        "oneOf": [{"type": "string", "format": "date-time"}, {"type": "number"}],
                    },
                    "stop": {
                        "nullable": True,
                        "oneOf": [{"type": "string", "format": "date-time"}, {"type": "number"}],
                    },
                    "priority": {"type": "integer", "minimum": 0, "maximum": 7},
                    "retain": {"type": "boolean"},
                },
            },
            "GeoArea": {
                "type": "object",
                "required": ["latitude", "longitude"],
                "properties": {
                    "latitude": {"type": "number"},
                    "longitude": {"type": "number"},
                    "shape": {"type": "string", "enum": ["circle", "rectangle", "ellipse"]},
                    "a": {"type": "number"},
                    "b": {"type": "number"},
                    "angle": {"type": "number"},
                },
            },
            "Decision": {
                "type": "object",
                "required": ["request", "status"],
                "properties": {
                    "request": {
                        "type": "string",
                        "description": "key of a pending SREM request, e.g. station-2104711:1201:5",
                    },
                    "status": {"type": "string", "description": "PrioritizationResponseStatus, e.g. granted"},
                    "minute": {"type": "integer"},
                    "second": {"type": "integer"},
                    "duration": {"type": "integer"},
                    "inboundOn": {"type": "object"},
                    "outboundOn": {"type": "object"},
                },
            },
            "Termination": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "mode": {"type": "string", "enum": ["cancellation", "stop"]},
                    "request": {"type": "string"},
                },
            },
            "Answer": {
                "type": "object",
                "properties": {
                    "service": {"type": "string"},
                    "id": {"type": "string"},
                    "identification": {
                        "type": "object",
                        "description": "the message identification: intersections and "
                        "revisions, provider and iviIdentificationNumber, sequence numbers, msgCnt",
                    },
                    "warnings": {"type": "array", "items": {"type": "string"}},
                    "next_transmission": {"type": "string", "nullable": True},
                    "unchanged": {"type": "boolean"},
                    "content_changed": {"type": "boolean"},
                    "terminated": {"type": "string"},
                    "deferred_by_s": {"type": "number"},
                },
            },
            "Entry": {
                "type": "object",
                "properties": {
                    "service": {"type": "string"},
                    "id": {"type": "string"},
                    "message": {"type": "string"},
                    "state": {"type": "string", "enum": ["active", "pending", "idle", "terminating"]},
                    "identification": {"type": "object"},
                    "dissemination": {"type": "object"},
                    "generation": {"type": "integer"},
                    "fragments": {"type": "integer"},
                    "created_at": {"type": "string"},
                    "updated_at": {"type": "string"},
                    "window": {"type": "object"},
                    "next_transmission": {"type": "string", "nullable": True},
                    "payload": {"type": "object", "nullable": True},
                    "pdus_hex": {"type": "array", "items": {"type": "string"}},
                },
            },
            "PendingRequest": {
                "type": "object",
                "properties": {
                    "key": {"type": "string"},
                    "intersection": {"type": "string"},
                    "requestID": {"type": "integer"},
                    "requestType": {"type": "string"},
                    "expires": {"type": "string"},
                },
            },
            "ReceivedEvent": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "type": {"type": "string"},
                    "service": {"type": "string"},
                    "message": {"type": "string"},
                    "received_at": {"type": "string"},
                    "station_id": {"type": "integer"},
                    "pdu": {"type": "object", "description": "JER JSON of the PDU"},
                    "security": {
                        "type": "object",
                        "properties": {
                            "its_aid": {"type": "integer"},
                            "ssp": {"type": "string"},
                            "signer": {"type": "string"},
                            "verification": {"type": "string"},
                        },
                    },
                    "transport": {"type": "object"},
                    "ivi": {
                        "type": "object",
                        "description": "IVI collection management: new, update, cancellation, negation",
                    },
                    "tlc": {"type": "object", "description": "SREM: requestor (key, role) and requests (keys, ids)"},
                },
            },
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "path", "reason"],
                        "properties": {
                            "code": {
                                "type": "string",
                                "enum": sorted(CODES)
                                + ["not_found", "method_not_allowed", "http_error", "internal"]
                                + list(GATE_CODES),
                                "description": "; ".join(f"{k}: {v}" for k, v in CODES.items()),
                            },
                            "path": {
                                "type": "string",
                                "description": "the request field, e.g. payload.ivi.mandatory.validTo",
                            },
                            "reason": {"type": "string"},
                            "message": {"type": "string"},
                        },
                    }
                },
            },
        }
    },
}


_ANY = _json({"type": "object"}, "JSON")
_TOKEN = {"name": "token", "in": "path", "required": True, "schema": {"type": "string"}, "description": "token id"}
# routes the daemon adds to the services' routes (metrics, health, integrations, admin)
_MORE_PATHS = {
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics (docs/metrics.md)",
            "responses": {
                "200": {
                    "description": "text exposition format",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        }
    },
    "/v1/health": {"get": {"summary": "Liveness: {status: ok, version}", "responses": {"200": _ANY}}},
    "/v1/whoami": {
        "get": {
            "summary": "The identity and role the request authenticated as",
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "identity": {"type": "string"},
                            "role": {"type": "string"},
                            "kind": {"type": "string"},
                        },
                    },
                    "who",
                )
            },
        }
    },
    "/v1/integrations/controller/feed": {
        "post": {"summary": "One traffic-controller feed message (docs/integrations.md)", "responses": {"202": _ANY}}
    },
    "/v1/integrations/controller": {"get": {"summary": "The controller feed's status", "responses": {"200": _ANY}}},
    "/v1/integrations/status": {"get": {"summary": "Every integration's status", "responses": {"200": _ANY}}},
    "/ui": {
        "get": {
            "summary": "The web view (one HTML page; docs/operations.md)",
            "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}},
        }
    },
    "/ui/{asset}": {
        "parameters": [
            {
                "name": "asset",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "enum": ["index.html", "ui.js", "ui.css"]},
            }
        ],
        "get": {"summary": "The web view's script and style sheet", "responses": {"200": _ANY}},
    },
    "/ui/session": {
        "get": {
            "summary": "Whether this browser is authenticated (certificate or web-view session); counts nothing",
            "responses": {"200": _ANY},
        }
    },
    "/ui/login": {
        "post": {
            "summary": "Web-view login: a bearer token (form field token) for a session cookie (HttpOnly, SameSite=Strict, "
            "Secure over TLS) that GET routes of the monitor role accept; a failure counts for the lockout",
            "requestBody": {
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {"type": "object", "required": ["token"], "properties": {"token": {"type": "string"}}}
                    }
                }
            },
            "responses": {
                "200": _ANY,
                "401": _json(_ref("Error"), "unauthenticated (counted for the lockout)"),
                "422": _json(_ref("Error"), "no token"),
            },
        }
    },
    "/ui/logout": {"post": {"summary": "End the web-view session and clear its cookie", "responses": {"200": _ANY}}},
    "/v1/ui/state": {"get": {"summary": "Everything the web view shows, as JSON", "responses": {"200": _ANY}}},
    "/v1/ui/events": {
        "get": {
            "summary": "The web view's server-sent events (signal-group states)",
            "responses": {
                "200": {"description": "event stream", "content": {"text/event-stream": {"schema": {"type": "string"}}}}
            },
        }
    },
    "/v1/admin/reload": {
        "post": {
            "summary": "Re-read the configuration file (as SIGHUP); 409 if it is refused",
            "responses": {"200": _ANY, "409": _json(_ref("Error"), "reload_rejected")},
        }
    },
    "/v1/admin/pki/check": {
        "post": {
            "summary": "Wake the PKI client (pki:): it does now what is due (trust lists, enrolment, ATs); 409 without one",
            "responses": {"200": _ANY, "409": _json(_ref("Error"), "no_pki_client")},
        }
    },
    "/v1/admin/lockout": {
        "get": {"summary": "Counted client addresses and identities, with their bans", "responses": {"200": _ANY}}
    },
    "/v1/admin/unban": {
        "post": {
            "summary": 'Lift a ban: {"key": "addr:192.0.2.7"} or {"key": "id:token:ab12..."} or {"all": true}',
            "requestBody": {
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {"key": {"type": "string"}, "all": {"type": "boolean"}},
                        }
                    }
                }
            },
            "responses": {"200": _ANY, "422": _json(_ref("Error"), "neither key nor all")},
        }
    },
    "/v1/admin/tokens": {
        "get": {"summary": "Bearer tokens (id, role, name, expiry; never the secret)", "responses": {"200": _ANY}},
        "post": {
            "summary": "A new bearer token: {role, name, valid}; the answer carries the token, shown once",
            "requestBody": {
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "role": {"type": "string", "enum": ["monitor", "operator", "admin"]},
                                "name": {"type": "string"},
                                "valid": {"type": "string", "description": "e.g. 90d"},
                            },
                        }
                    }
                }
            },
            "responses": {"201": _ANY, "422": _json(_ref("Error"), "role or validity")},
        },
    },
    "/v1/admin/tokens/{token}": {
        "parameters": [_TOKEN],
        "delete": {"summary": "Revoke a bearer token", "responses": {"200": _ANY, "404": _ANY}},
    },
}
_GATE = {
    "401": _json(
        _ref("Error"), "unauthenticated: no valid client certificate or bearer token (counted for the lockout)"
    ),
    "403": _json(_ref("Error"), "forbidden: the role is too low; banned: banned until an admin lifts it"),
    "429": _json(_ref("Error"), "banned for a while (Retry-After) or rate_limited (state-changing requests)"),
}


def document() -> dict:
    """The document, with every operation's role (``x-rsu-role``: public, monitor, operator or admin; from
    rsu.api.guard.ROUTE_RULES) and its security requirement."""
    from rsu.api.auth import UNLISTED
    from rsu.api.guard import ROUTE_RULES
    from rsu.forward.api import openapi_paths

    doc: dict[str, Any] = copy.deepcopy(_DOC)
    doc["paths"].update(copy.deepcopy(_MORE_PATHS))
    doc["paths"].update(openapi_paths())  # the pre-signed forward routes (rsu.forward)
    doc["components"]["securitySchemes"] = {
        "clientCertificate": {
            "type": "mutualTLS",
            "description": "a client certificate of api.tls.client_ca_file; its CN's role in api.auth.clients",
        },
        "bearerToken": {"type": "http", "scheme": "bearer", "description": "rsu admin token add"},
    }
    doc["info"]["description"] += (
        " Every operation states the role it needs in x-rsu-role (monitor < operator < admin; public: none). "
        "When api.tls or api.auth.tokens is configured, a client authenticates with a client certificate or a "
        "bearer token; failed authentications lead to escalating bans (429, then 403)."
    )
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            rule = ROUTE_RULES.get((method.upper(), path), UNLISTED)
            op["x-rsu-role"] = rule.role
            if rule.role == "public":
                op["security"] = []
            else:
                op["security"] = [{"clientCertificate": []}, {"bearerToken": []}]
                op["responses"] = {**op["responses"], **{k: v for k, v in _GATE.items() if k not in op["responses"]}}
    return doc
