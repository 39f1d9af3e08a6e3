"""``rsu pki trust show`` (and the other pki client commands) in real subprocesses."""

from __future__ import annotations

import json

from tests.conftest import run_rsu
from tests.pki import authorities as A
from tests.pki.helpers import CTL_FR_L1, ECTL_L0


def test_trust_show_l0_ectl_before_and_after_next_update():
    r = run_rsu("pki", "trust", "show", str(ECTL_L0), "--now", "2025-07-01T00:00:00Z")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["kind"], out["sequence"], out["nextUpdate"]) == ("ectl", 22, "2025-07-12T21:59:58Z")
    assert out["signer"]["hashedId8"] == "8ffe810bdb0d71e6"
    assert out["signatureValid"] is True and out["validAtNow"] is True
    assert len(out["rootCAs"]) == 25 and "fd43c421a7d771a8" in {r["hashedId8"] for r in out["rootCAs"]}
    assert len(out["dcs"]) == 21 and all(d["url"].startswith("http") for d in out["dcs"])
    late = run_rsu("pki", "trust", "show", str(ECTL_L0), "--now", "2025-08-01T00:00:00Z")
    assert late.returncode == 1
    out = json.loads(late.stdout)
    assert (out["signatureValid"], out["validAtNow"], out["reason"]) == (True, False, "expired")


def test_trust_show_tampered_and_garbage(tmp_path):
    raw = bytearray(CTL_FR_L1.read_bytes())
    raw[600] ^= 0x01  # inside the root CA entries, covered by the TLM signature
    f = tmp_path / "ctl.oer"
    f.write_bytes(bytes(raw))
    r = run_rsu("pki", "trust", "show", str(f), "--now", "2025-06-01T00:00:00Z")
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert (out["signatureValid"], out["reason"]) == (False, "invalid-signature")
    g = run_rsu("pki", "trust", "show", "0380aabb")
    assert g.returncode == 2 and b"rsu: error:" in g.stderr and b"Traceback" not in g.stderr


def test_trust_show_digest_signed_crl_needs_the_signer(tmp_path):
    root = A.etsi_root()
    f = tmp_path / "crl.oer"
    f.write_bytes(A.crl(root, [bytes(range(8))]))
    r = run_rsu("pki", "trust", "show", str(f), "--now", "2019-06-01T00:00:00Z")
    out = json.loads(r.stdout)
    assert r.returncode == 1 and out["signatureValid"] is None and out["revoked"] == ["0001020304050607"]
    cert = tmp_path / "rca.oer"
    cert.write_bytes(root.certificate.raw)
    r = run_rsu("pki", "trust", "show", str(f), "--now", "2019-06-02T00:00:00Z", "--signer", str(cert))
    out = json.loads(r.stdout)
    assert r.returncode == 0 and out["kind"] == "crl" and out["signatureValid"] is True
