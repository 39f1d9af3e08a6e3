"""Certificate files are decoded once and read back from the cache (rsu.security.certcache): what a load gives
from the cache is what the asn1tools decode gives (differential, over the ETSI vectors and generated
certificates), the checks still run, and a foreign or corrupt cache file is never trusted."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sechelp import NOW

from rsu import catalog
from rsu import clock as clockmod
from rsu.security import certcache, certs, pki
from rsu.security.certs import Certificate, CertificateError
from tests.conftest import VECTORS


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """An empty cache directory of its own; the process memory of the cache is forgotten around the test."""
    monkeypatch.setenv("RSU_CACHE_DIR", str(tmp_path / "cache"))
    certcache.clear_memory()
    yield tmp_path / "cache"
    certcache.clear_memory()


def _no_decode(data: bytes):
    raise AssertionError("decoded with asn1tools although the cache holds these bytes")


def _same(a: Certificate, b: Certificate) -> None:
    assert a.raw == b.raw
    assert a.value == b.value
    assert a.tbs_bytes == b.tbs_bytes
    assert a.summary() == b.summary()
    assert a.hashed_id8 == b.hashed_id8


def _vector_certificates() -> list[Path]:
    found = []
    for path in sorted(VECTORS.rglob("*")):
        if path.suffix in (".oer", ".cert") and path.is_file():
            try:
                Certificate.from_bytes(path.read_bytes())
            except CertificateError:
                continue  # a message or a list, not a certificate
            found.append(path)
    return found


VECTOR_CERTS = _vector_certificates()


def test_the_vectors_hold_certificates():
    assert len(VECTOR_CERTS) >= 10


@pytest.mark.parametrize("path", VECTOR_CERTS, ids=lambda p: p.name)
def test_a_cached_load_is_the_decoded_certificate(path, private_cache, monkeypatch):
    reference = Certificate.from_bytes(path.read_bytes(), source=str(path))
    first = Certificate.load(path)  # decoded, then kept
    assert list(private_cache.glob("certificates-*.pickle"))
    certcache.clear_memory()  # as a new process: from the file
    monkeypatch.setattr(certs, "_decode", _no_decode)
    second = Certificate.load(path)
    _same(first, reference)
    _same(second, reference)
    assert second.source == str(path)


def test_each_load_gets_its_own_value(tmp_path):
    path = VECTOR_CERTS[0]
    a, b = Certificate.load(path), Certificate.load(path)
    assert a.value == b.value and a.value is not b.value


def test_the_profile_is_checked_on_a_cache_hit(monkeypatch):
    path = VECTOR_CERTS[0]
    Certificate.load(path)
    monkeypatch.setattr(certs, "_decode", _no_decode)

    def refuse(self):
        raise CertificateError("implicit certificates are not used in ETSI C-ITS")

    monkeypatch.setattr(Certificate, "_check_profile", refuse)
    with pytest.raises(CertificateError, match=f"{path}: implicit certificates"):
        Certificate.load(path)


def test_bytes_that_are_not_a_certificate_give_the_same_error_and_are_not_kept(tmp_path, private_cache):
    bad = tmp_path / "bad.oer"
    bad.write_bytes(b"\x80\x03\x00\x81")
    with pytest.raises(CertificateError) as reference:
        Certificate.from_bytes(bad.read_bytes())
    for _ in range(2):
        with pytest.raises(CertificateError) as loaded:
            Certificate.load(bad)
        assert str(loaded.value) == f"{bad}: {reference.value}"
    assert not list(private_cache.glob("certificates-*.pickle"))


def test_a_corrupt_cache_file_is_decoded_again_and_rewritten(private_cache):
    path = VECTOR_CERTS[0]
    Certificate.load(path)
    (cache_file,) = private_cache.glob("certificates-*.pickle")
    cache_file.write_bytes(b"not a pickle")
    certcache.clear_memory()
    _same(Certificate.load(path), Certificate.from_bytes(path.read_bytes()))
    certcache.clear_memory()
    assert certcache._read(cache_file)  # rewritten with the entry


class _Boom:
    def __reduce__(self):
        return (pytest.fail, ("a class named in the cache file was called",))


def test_a_cache_file_naming_a_class_is_refused_not_run(private_cache, monkeypatch):
    path = VECTOR_CERTS[0]
    Certificate.load(path)
    (cache_file,) = private_cache.glob("certificates-*.pickle")
    import hashlib

    key = hashlib.sha256(path.read_bytes()).digest()
    cache_file.write_bytes(pickle.dumps({key: pickle.dumps(_Boom())}))  # a crafted entry
    certcache.clear_memory()
    _same(Certificate.load(path), Certificate.from_bytes(path.read_bytes()))
    cache_file.write_bytes(pickle.dumps(_Boom()))  # a crafted file
    certcache.clear_memory()
    _same(Certificate.load(path), Certificate.from_bytes(path.read_bytes()))


def test_no_cache_directory_still_loads(monkeypatch, tmp_path):
    monkeypatch.setattr(certcache, "cache_dir", lambda: None)
    certcache.clear_memory()
    path = VECTOR_CERTS[0]
    _same(Certificate.load(path), Certificate.from_bytes(path.read_bytes()))
    _same(Certificate.load(path), Certificate.from_bytes(path.read_bytes()))


def test_the_cache_keeps_at_most_max_entries(monkeypatch, private_cache, tmp_path):
    monkeypatch.setattr(certcache, "MAX_ENTRIES", 3)
    for path in VECTOR_CERTS[:5]:
        Certificate.load(path)
    certcache.clear_memory()
    (cache_file,) = private_cache.glob("certificates-*.pickle")
    assert len(certcache._read(cache_file)) == 3
    reference = Certificate.from_bytes(VECTOR_CERTS[4].read_bytes())
    monkeypatch.setattr(certs, "_decode", _no_decode)
    _same(Certificate.load(VECTOR_CERTS[4]), reference)  # the newest stay


_ROOT = pki.make_root(clockmod.time32(NOW) - 86400)
_AA = pki.make_aa(_ROOT, clockmod.time32(NOW) - 3600)
_REGIONS = st.one_of(
    st.none(),
    st.builds(
        lambda c: ("identifiedRegion", [("countryOnly", c)]),
        st.integers(0, 65535),
    ),
    st.builds(
        lambda lat, lon, r: ("circularRegion", {"center": {"latitude": lat, "longitude": lon}, "radius": r}),
        st.integers(-900000000, 900000000),
        st.integers(-1799999999, 1800000000),
        st.integers(0, 65535),
    ),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kinds=st.lists(st.sampled_from(catalog.MESSAGES), min_size=1, max_size=4, unique=True),
    ssp=st.one_of(st.none(), st.binary(min_size=1, max_size=8)),
    hours=st.integers(1, 8760),
    curve=st.sampled_from(["ecdsaNistP256", "ecdsaBrainpoolP256r1", "ecdsaBrainpoolP384r1"]),
    region=_REGIONS,
)
def test_generated_tickets_load_from_the_cache_as_decoded(tmp_path, monkeypatch, kinds, ssp, hours, curve, region):
    issued = pki.make_at(
        _AA, clockmod.time32(NOW), [(k.its_aid, ssp) for k in kinds], hours=hours, curve_name=curve, region=region
    )
    path = tmp_path / f"at-{issued.certificate.hashed_id8.hex()}.oer"
    path.write_bytes(issued.certificate.raw)
    reference = Certificate.from_bytes(issued.certificate.raw)
    _same(Certificate.load(path), reference)
    certcache.clear_memory()
    with monkeypatch.context() as m:
        m.setattr(certs, "_decode", _no_decode)
        _same(Certificate.load(path), reference)
