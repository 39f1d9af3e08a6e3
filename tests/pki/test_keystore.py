"""Key storage: the file and PKCS#11 (SoftHSM2) backends behind one interface, checked with cryptography."""

from __future__ import annotations

import os
import pickle
import stat

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from rsu import clock
from rsu.pki import ecies, signed
from rsu.pki import requests as R
from rsu.pki.keystore import FileKeyStore, KeyStoreError, atomic_write, open_keystore
from rsu.security.keys import CURVES, sign_digest, verify_digest
from tests.pki.authorities import NOW, TestEA
from tests.pki.helpers import SeededRandomness, cert

CURVE_NAMES = ["ecdsaNistP256", "ecdsaBrainpoolP256r1", "ecdsaBrainpoolP384r1"]


@pytest.fixture(params=["file", "pkcs11"])
def store(request, tmp_path):
    if request.param == "file":
        return FileKeyStore(tmp_path / "keys")
    return request.getfixturevalue("hsm_token")


@pytest.mark.parametrize("curve_name", CURVE_NAMES)
def test_sign_and_ecdh_agree_with_cryptography(store, curve_name):
    key = store.generate("ec-1", curve_name)
    curve = CURVES[curve_name]
    digest = curve.hash(b"to be signed")
    r, s = sign_digest(key, curve, digest)
    assert verify_digest(key.public_key(), curve, digest, r, s)
    assert not verify_digest(key.public_key(), curve, curve.hash(b"other"), r, s)
    peer = ec.generate_private_key(curve.ec_curve())
    assert key.exchange(ec.ECDH(), peer.public_key()) == peer.exchange(ec.ECDH(), key.public_key())
    again = store.get("ec-1")  # found again by label, same key
    assert again.curve_name == curve_name
    assert again.exchange(ec.ECDH(), peer.public_key()) == peer.exchange(ec.ECDH(), key.public_key())


def test_labels_delete_and_errors(store):
    store.generate("at-b")
    store.generate("at-a")
    store.generate("canonical")
    assert store.labels() == ["at-a", "at-b", "canonical"]
    assert store.labels("at-") == ["at-a", "at-b"]
    with pytest.raises(KeyStoreError) as e:
        store.generate("at-a")
    assert e.value.reason == "exists"
    assert store.delete("at-a") and not store.delete("at-a")
    with pytest.raises(KeyStoreError) as e:
        store.get("at-a")
    assert e.value.reason == "not-found"
    for bad in ("", "../x", "a/b", ".hidden", "x" * 65):
        with pytest.raises(KeyStoreError) as e:
            store.generate(bad)
        assert e.value.reason == "bad-label"
    with pytest.raises(KeyStoreError) as e:
        store.generate("k", "ecdsaNistP999")
    assert e.value.reason == "unsupported"


def test_no_export(store):
    key = store.generate("canonical")
    for attr in ("private_bytes", "private_numbers"):
        assert not hasattr(key, attr)
    assert repr(key).endswith("canonical ecdsaNistP256>")
    with pytest.raises(TypeError):
        pickle.dumps(key)
    with pytest.raises(KeyStoreError):  # only prehashed digests
        key.sign(b"message", ec.ECDSA(hashes.SHA256()))


def test_enrolment_through_the_store(store):
    """An EC key generated in the store signs the PoP; the canonical key in the store signs the outer layer."""
    canonical = store.generate("canonical")
    new = store.generate("ec-pending")
    ea = TestEA({b"RSU-1": canonical.public_key()})
    pending = R.build_enrolment_request(
        its_id=b"RSU-1",
        signing_key=canonical,
        ea=ea.cert,
        generation_time=clock.time64(NOW),
        random=SeededRandomness("k"),
        new_key=new,
    )
    response = R.process_response(pending, ea.handle(pending.body), NOW)
    assert response.ok and response.private_key is new
    assert ea.seen[-1]["outer_signer"] == "self"


def test_ecies_decrypt_with_a_stored_key(store):
    """ECDH on the token opens ECIES data sent to the key (the recipient side of encryption)."""
    key = store.generate("enc")
    recipient = cert("CERT_TS_A_EA")  # P1 source only
    p1 = recipient.digest("sha256")
    eph = SeededRandomness("e").private_key(ec.SECP256R1())
    wrapped = ecies.wrap_key(b"k" * 16, "eciesNistP256", key.public_key(), p1, eph)
    assert ecies.unwrap_key(wrapped, key, p1) == b"k" * 16


def test_file_store_permissions(tmp_path):
    store = FileKeyStore(tmp_path / "keys")
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    store.generate("canonical")
    path = tmp_path / "keys" / "canonical.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in (tmp_path / "keys").iterdir()] == ["canonical.key"]  # no temporary left
    os.chmod(path, 0o644)
    with pytest.raises(KeyStoreError) as e:
        store.get("canonical")
    assert e.value.reason == "insecure" and "chmod 600" in e.value.detail
    os.chmod(tmp_path / "keys", 0o755)
    with pytest.raises(KeyStoreError) as e:
        FileKeyStore(tmp_path / "keys")
    assert e.value.reason == "insecure"


def test_atomic_write_replaces_whole(tmp_path):
    target = tmp_path / "state.json"
    atomic_write(target, b"old")
    atomic_write(target, b"new content", mode=0o644)
    assert target.read_bytes() == b"new content" and stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_open_keystore_names_what_is_missing(tmp_path):
    assert isinstance(open_keystore("file", directory=tmp_path / "k"), FileKeyStore)
    with pytest.raises(KeyStoreError) as e:
        open_keystore("pkcs11", module="/x.so")
    assert "token, pin" in e.value.detail
    with pytest.raises(KeyStoreError) as e:
        open_keystore("tpm")
    assert e.value.reason == "unsupported"


def test_pkcs11_key_is_not_extractable(hsm_token, softhsm):
    import pkcs11

    hsm_token.generate("canonical")
    (priv,) = hsm_token._find("canonical", pkcs11.ObjectClass.PRIVATE_KEY)
    assert priv[pkcs11.Attribute.SENSITIVE] and not priv[pkcs11.Attribute.EXTRACTABLE]
    with pytest.raises(pkcs11.exceptions.PKCS11Error):
        priv[pkcs11.Attribute.VALUE]


def test_pkcs11_wrong_pin_and_token(softhsm):
    from rsu.pki.keystore import Pkcs11KeyStore

    with pytest.raises(KeyStoreError) as e:
        Pkcs11KeyStore(softhsm["module"], softhsm["token"], "0000")
    assert e.value.reason == "backend" and "PIN" in e.value.detail and "0000" not in e.value.detail
    with pytest.raises(KeyStoreError) as e:
        Pkcs11KeyStore(softhsm["module"], "no-such-token", "1234")
    assert "no token" in e.value.detail


def test_signed_message_verifies(store):
    key = store.generate("k")
    data = signed.sign(key, psid=623, generation_time=clock.time64(NOW), payload=b"hello")
    opened = signed.open_signed(data)
    assert opened.verify(key.public_key()) and opened.payload == b"hello"
