"""The API edge under malformed input: hundreds of mutated requests (seeded, so CI sees the same ones)
against the real API and service layer. Every answer is a JSON error with a known code and a field
path, never a 500; nothing half-applied survives; the layer keeps working afterwards."""

from __future__ import annotations

import copy
import json
import random
import sqlite3

from aiohttp.test_utils import TestClient, TestServer

from rsu.api.app import create_app
from rsu.services.errors import CODES
from rsu.services.store import DB_NAME
from services.support import example, new_ivim

ODD_VALUES = [
    None,
    -1,
    0,
    2**40,
    -(2**63),
    1.5,
    float("1e308"),
    True,
    "",
    "x",
    "ff" * 600,
    [],
    {},
    [[[]]],
    {"a": {"b": {"c": None}}},
    "2025-13-45T99:99:99Z",
    "\u0000\ud7ff",
    "../../etc/passwd",
]


def leaves(obj, path=()):
    if isinstance(obj, dict):
        yield path
        for k, v in obj.items():
            yield from leaves(v, path + (k,))
    elif isinstance(obj, list):
        yield path
        for i, v in enumerate(obj):
            yield from leaves(v, path + (i,))
    else:
        yield path


def mutate(obj, rng: random.Random):
    obj = copy.deepcopy(obj)
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in leaves(obj) if p]
        if not paths:
            return rng.choice(ODD_VALUES)
        path = rng.choice(paths)
        parent = obj
        for key in path[:-1]:
            parent = parent[key]
        action = rng.random()
        if action < 0.6:
            parent[path[-1]] = rng.choice(ODD_VALUES)
        elif action < 0.8 and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent["unexpected_" + str(rng.randint(0, 99))] = rng.choice(ODD_VALUES)
        else:
            parent.append(rng.choice(ODD_VALUES))
    return obj


PAYLOADS = {
    "rlt": lambda: example("mapem"),
    "tlm": lambda: example("spatem"),
    "ivi": new_ivim,  # without the service-owned fields (id, status, timeStamp)
    "tlc": lambda: example("srem"),
    "gpc": lambda: example("rtcmem"),
}


async def check_answer(resp) -> dict:
    assert resp.status < 500, (resp.status, await resp.text())
    body = await resp.json()
    if resp.status >= 400:
        err = body["error"]
        assert err["code"] in CODES and err["reason"] and isinstance(err["path"], str), body
    return body


async def test_mutated_requests_never_crash_or_half_apply(make_layer, clock, state_dir):
    rng = random.Random(20261121)
    layer = make_layer()
    client = TestClient(TestServer(create_app(layer, keepalive_s=0.2), host="127.0.0.1"))
    await client.start_server()
    try:
        payloads = {s: f() for s, f in PAYLOADS.items()}
        accepted = {}
        for service, payload in payloads.items():  # one valid entry per service to update/terminate
            resp = await client.post(f"/v1/{service}/messages", json={"payload": payload})
            accepted[service] = (await check_answer(resp))["id"]

        def snapshot():
            return sorted(
                (
                    e["service"],
                    e["id"],
                    e["generation"],
                    json.dumps(e["identification"], sort_keys=True),
                    json.dumps(e["dissemination"], sort_keys=True),
                )
                for e in layer.list()
            )

        answered = {"2xx": 0, "4xx": 0}
        for _ in range(400):
            service = rng.choice(list(payloads))
            body = {"payload": mutate(payloads[service], rng)}
            if rng.random() < 0.3:
                body["dissemination"] = mutate(
                    {
                        "repetition_interval_s": 1.0,
                        "lifetime_s": 1.0,
                        "hop_limit": 1,
                        "transports": ["gn"],
                        "start": None,
                    },
                    rng,
                )
            if rng.random() < 0.1:
                body = mutate(body, rng)
            before = snapshot()
            kind = rng.random()
            if kind < 0.5:
                resp = await client.post(f"/v1/{service}/messages", data=json.dumps(body))
            elif kind < 0.85:
                resp = await client.put(f"/v1/{service}/messages/{accepted[service]}", data=json.dumps(body))
            else:
                raw = rng.choice([b"", b"{", b"[1,2]", b"null", b"\xff\xfe", json.dumps(body).encode()[:-3]])
                resp = await client.post(f"/v1/{service}/messages", data=raw)
            await check_answer(resp)
            answered["2xx" if resp.status < 300 else "4xx"] += 1
            if resp.status >= 400:
                assert snapshot() == before, ("a refused request changed the table", body)
        assert answered["4xx"] > 300  # the mutations are mostly invalid, and were refused
        # the layer still works: a clean update and a fresh trigger go through
        resp = await client.put(f"/v1/rlt/messages/{accepted['rlt']}", json={"payload": payloads["rlt"]})
        assert resp.status == 200, await resp.text()
        resp = await client.post("/v1/gpc/messages", json={"payload": payloads["gpc"], "stream": "after-fuzz"})
        assert resp.status in (200, 201), await resp.text()
    finally:
        await client.close()
    layer.close()
    db = sqlite3.connect(state_dir / DB_NAME)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()
