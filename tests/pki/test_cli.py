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
    anchored = run_rsu(
        "pki", "trust", "show", str(ECTL_L0), "--now", "2025-07-01T00:00:00Z", "--anchor", "8FFE810BDB0D71E6"
    )
    assert anchored.returncode == 0 and json.loads(anchored.stdout)["signerIsAnchor"] is True
    other = run_rsu(
        "pki", "trust", "show", str(ECTL_L0), "--now", "2025-07-01T00:00:00Z", "--anchor", "C8EAAB4C86EBCDD2"
    )
    assert other.returncode == 1 and json.loads(other.stdout)["signerIsAnchor"] is False
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


def test_offline_enrolment_and_authorization(tmp_path):
    """request ec -> test EA -> response; request at -> test AA -> response; all through the CLI."""
    import os

    from cryptography.hazmat.primitives.asymmetric import ec

    from rsu.security.keys import write_private_key
    from tests.pki.authorities import TestAA, TestEA
    from tests.pki.helpers import ETSI, SeededRandomness

    canonical = SeededRandomness("cli").private_key(ec.SECP256R1())
    write_private_key(tmp_path / "canonical.key", canonical)
    ea = TestEA({b"RSU-CLI-1": canonical.public_key()})
    aa = TestAA(ea)
    now = "2019-06-02T00:00:00Z"  # the test authorities issue at authorities.NOW (2019-06-01)
    r = run_rsu(
        "pki",
        "request",
        "ec",
        "--ea-cert",
        str(ETSI / "CERT_TS_A_EA.oer"),
        "--its-id",
        "RSU-CLI-1",
        "--canonical-key",
        str(tmp_path / "canonical.key"),
        "--out",
        str(tmp_path / "ec.req"),
        "--now",
        now,
    )
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["kind"] == "enrolment" and info["authority"] == "740928d9ee848e90"
    pending = tmp_path / "ec.req.pending.json"
    assert os.stat(pending).st_mode & 0o777 == 0o600
    (tmp_path / "ec.resp").write_bytes(ea.handle((tmp_path / "ec.req").read_bytes()))
    r = run_rsu(
        "pki",
        "response",
        str(tmp_path / "ec.resp"),
        "--pending",
        str(pending),
        "--now",
        now,
        "--out-cert",
        str(tmp_path / "ec.oer"),
        "--out-key",
        str(tmp_path / "ec.key"),
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["ok"] and out["code"] == "ok" and out["certificate"]["issuer"] == {"sha256AndDigest": "740928d9ee848e90"}
    assert os.stat(tmp_path / "ec.key").st_mode & 0o777 == 0o600

    r = run_rsu(
        "pki",
        "request",
        "at",
        "--aa-cert",
        str(ETSI / "CERT_IUT_A_AA.oer"),
        "--ea-cert",
        str(ETSI / "CERT_TS_A_EA.oer"),
        "--ec",
        str(tmp_path / "ec.oer"),
        "--ec-key",
        str(tmp_path / "ec.key"),
        "--service",
        "spatem",
        "--service",
        "mapem",
        "--out",
        str(tmp_path / "at.req"),
        "--now",
        now,
    )
    assert r.returncode == 0, r.stderr
    assert [p["psid"] for p in json.loads(r.stdout)["appPermissions"]] == [137, 138]
    (tmp_path / "at.resp").write_bytes(aa.handle((tmp_path / "at.req").read_bytes()))
    r = run_rsu(
        "pki",
        "response",
        str(tmp_path / "at.resp"),
        "--pending",
        str(tmp_path / "at.req.pending.json"),
        "--now",
        now,
        "--out-cert",
        str(tmp_path / "at.oer"),
        "--out-key",
        str(tmp_path / "at.key"),
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert {p["psid"] for p in out["certificate"]["appPermissions"]} == {137, 138}

    aa.answer = "its-aa-deniedpermissions"  # a named non-ok code: exit 1, nothing written
    r = run_rsu(
        "pki",
        "request",
        "at",
        "--aa-cert",
        str(ETSI / "CERT_IUT_A_AA.oer"),
        "--ea-cert",
        str(ETSI / "CERT_TS_A_EA.oer"),
        "--ec",
        str(tmp_path / "ec.oer"),
        "--ec-key",
        str(tmp_path / "ec.key"),
        "--service",
        "ivim",
        "--out",
        str(tmp_path / "at2.req"),
        "--now",
        now,
    )
    (tmp_path / "at2.resp").write_bytes(aa.handle((tmp_path / "at2.req").read_bytes()))
    r = run_rsu(
        "pki",
        "response",
        str(tmp_path / "at2.resp"),
        "--pending",
        str(tmp_path / "at2.req.pending.json"),
        "--now",
        now,
        "--out-cert",
        str(tmp_path / "at2.oer"),
    )
    assert r.returncode == 1 and json.loads(r.stdout)["code"] == "its-aa-deniedpermissions"
    assert not (tmp_path / "at2.oer").exists()
    r = run_rsu(
        "pki",
        "request",
        "at",
        "--aa-cert",
        str(ETSI / "CERT_IUT_A_AA.oer"),
        "--ea-cert",
        str(ETSI / "CERT_TS_A_EA.oer"),
        "--ec",
        str(tmp_path / "ec.oer"),
        "--ec-key",
        str(tmp_path / "ec.key"),
        "--service",
        "ssem",
        "--out",
        str(tmp_path / "x.req"),
        "--now",
        now,
    )
    assert r.returncode == 2 and b"not-permitted" in r.stderr and not (tmp_path / "x.req").exists()


def test_pki_init_makes_the_canonical_identity_once(tmp_path):
    import stat

    from rsu.pki.identity import public_key_hex
    from rsu.pki.keystore import FileKeyStore

    r = run_rsu("pki", "init", str(tmp_path), "--its-id", "RSU-PARIS-0001", "--service", "spatem")
    assert r.returncode == 0, r.stderr
    canonical = json.loads(r.stdout)["canonical"]
    assert bytes.fromhex(canonical["itsId"]) == b"RSU-PARIS-0001" and canonical["keyLabel"] == "canonical"
    key = FileKeyStore(tmp_path / "keys").get("canonical")
    assert public_key_hex(key.public_key()) == canonical["publicKey"]
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "keys" / "canonical.key").stat().st_mode) == 0o600
    key_pem = (tmp_path / "keys" / "canonical.key").read_text()
    assert key_pem.split("\n")[1] not in (r.stdout + r.stderr).decode()  # never printed
    # a second run (--force rebuilds the test PKI) keeps the identity the EA knows; another id is refused
    again = run_rsu("pki", "init", str(tmp_path), "--force", "--service", "spatem")
    assert again.returncode == 0 and json.loads(again.stdout)["canonical"] == canonical
    other = run_rsu("pki", "init", str(tmp_path), "--force", "--its-id", "OTHER", "--service", "spatem")
    assert other.returncode != 0 and "already" in other.stderr.decode()
