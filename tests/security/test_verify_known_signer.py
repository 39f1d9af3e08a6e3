"""A certificate signer whose bytes are a cached certificate's is taken from the cache once (by parse_signed)
and used as is by the verifier, instead of being hashed and looked up again: against the reference path
(the signer decoded by asn1tools, then hashed and looked up), every received message gives the same result
(reason, detail, signer, SSP, chain, content) and leaves the same certificate cache."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from sechelp import NOW, sign_with

from rsu import catalog
from rsu.clock import ManualClock
from rsu.security import ssp
from rsu.security import verify as V

EXAMPLES = Path(__file__).resolve().parents[2] / "config" / "examples"


def _result(r: V.VerificationResult) -> tuple:
    return (
        r.reason,
        r.detail,
        r.signer_form,
        r.signer_id,
        r.ssp,
        r.chain,
        r.signature_valid,
        r.tbs_hash,
        r.pdu.value if r.pdu is not None else None,
        r.missing_permissions,
        r.certificate.raw if r.certificate is not None else None,
    )


def _messages(test_pki, codec) -> list[bytes]:
    _, value = codec.from_jer(json.loads((EXAMPLES / "srem-bus-priority.json").read_text()), catalog.SREM)
    srem = codec.encode(value, catalog.SREM)
    rnd = random.Random(13)
    at = test_pki.ats["srem"]
    narrow = test_pki.at("srem", ssp.encode(catalog.SREM, ["signalRequest"]))  # no bus role: SSP_VIOLATION
    other = test_pki.ats["spatem"]  # no SREM permission: PSID_NOT_PERMITTED (or a mismatch)
    whole = [
        sign_with(at, srem, catalog.SREM.its_aid),
        sign_with(at, srem, catalog.SREM.its_aid, NOW - 5),
        sign_with(at, srem, catalog.SREM.its_aid, NOW - 100),  # too old
        sign_with(at, srem[:-3], catalog.SREM.its_aid),  # payload invalid
        sign_with(narrow, srem, catalog.SREM.its_aid),
        sign_with(other, srem, catalog.SREM.its_aid),
        sign_with(other, srem, catalog.SPATEM.its_aid),
    ]
    out = list(whole)
    for data in whole[:2]:
        for i in range(len(data)):  # every byte of the first message changed once, the tail (signer, signature) too
            out.append(data[:i] + bytes([data[i] ^ (1 << rnd.randrange(8))]) + data[i + 1 :])
        out.extend(data[:n] for n in range(0, len(data), 7))
    return out


@pytest.mark.parametrize("cached", [True, False])
def test_known_signer_gives_the_reference_result(test_pki, codec, monkeypatch, cached):
    messages = _messages(test_pki, codec)

    def run() -> tuple[list[tuple], list[bytes]]:
        clock = ManualClock(NOW)
        verifier = V.Verifier(clock, test_pki.trust, codec=codec)
        if cached:  # the ATs learned before (from an earlier message): the case served from the cache
            for name in ("srem", "spatem"):
                verifier.add_certificate(test_pki.ats[name].certificate)
        results = [_result(verifier.verify(m, catalog.SREM)) for m in messages]
        return results, list(verifier._cache)

    fast = run()
    served = []
    real = V._known_signer
    monkeypatch.setattr(V, "_known_signer", lambda *a: served.append(1) or real(*a))
    assert run() == fast
    if cached:
        assert len(served) > 100  # the messages did reach the known-signer path
    monkeypatch.setattr(V, "_known_signer", lambda data, p, known: (None, p, None))  # the reference path
    reference = run()
    assert reference == fast
    reasons = {r[0] for r in fast[0]}
    assert {None, V.Reason.SSP_VIOLATION, V.Reason.PSID_NOT_PERMITTED, V.Reason.INVALID_SIGNATURE} <= reasons
    assert {V.Reason.MALFORMED, V.Reason.PAYLOAD_INVALID, V.Reason.GENERATION_TIME_TOO_OLD} <= reasons
