"""Trust lists: the real EU L0 ECTL and French L1 CTL, and a test TLM / ETSI test root publishing
ECTL, CTL (full and delta) and CRL; every refusal named, nothing half-applied (facts §8)."""

from __future__ import annotations

import pytest

from rsu import clock
from rsu.pki import trustlist as T
from rsu.pki.signed import signer_hashed_id8
from rsu.security.certs import Certificate
from tests.pki import authorities as A
from tests.pki.helpers import CTL_FR_L1, ECTL_L0, TLM_FR_L1, cert

L0_NEXT_UPDATE = 679442403
L0_NOW = clock.time32_to_posix(L0_NEXT_UPDATE) - 86400  # one day before nextUpdate
FR_NOW = clock.time32_to_posix(678237413) - 86400


def l0_tlm() -> Certificate:
    return T.parse_trust_list(ECTL_L0.read_bytes()).signer_certificate


# ====================================================================== real lists


def test_eu_l0_ectl():
    store = T.TrustStore.with_anchor(l0_tlm()).with_ectl(ECTL_L0.read_bytes(), L0_NOW)
    assert store.ectl.sequence == 22
    assert store.ectl.signer.hex() == "8ffe810bdb0d71e6"
    assert len(store.roots) == 25
    assert len(store.dcs) == 21
    assert store.cpoc == "https://cpoc.jrc.ec.europa.eu/L0"
    successors = [r for r in store.roots.values() if r.successor_to is not None]
    assert len(successors) == 4
    assert all(r.successor_to in store.roots for r in successors)  # each links an old root still listed
    listed = {h for hs in store.dcs.values() for h in hs}
    assert listed <= set(store.roots)  # every DC serves roots of this ECTL (SHA-384 H8 for P-384 roots)
    assert any(url.startswith("http://") for url in store.dcs) and any(u.startswith("https://") for u in store.dcs)


def test_eu_l0_ectl_anchored_by_configured_id():
    """Only the TLM HashedId8 is configured (as in the VZ README); the inline certificate then anchors."""
    store = T.TrustStore.with_anchor_ids(bytes.fromhex("8FFE810BDB0D71E6")).with_ectl(ECTL_L0.read_bytes(), L0_NOW)
    assert len(store.roots) == 25 and bytes.fromhex("8ffe810bdb0d71e6") in store.anchors
    with pytest.raises(T.TrustListError) as e:
        T.TrustStore.with_anchor_ids(bytes(8)).with_ectl(ECTL_L0.read_bytes(), L0_NOW)
    assert e.value.reason == "signer-unknown"


def test_eu_l0_ectl_refused_after_next_update():
    later = clock.time32_to_posix(L0_NEXT_UPDATE) + 1
    with pytest.raises(T.TrustListError) as e:
        T.TrustStore.with_anchor(l0_tlm()).with_ectl(ECTL_L0.read_bytes(), later)
    assert e.value.reason == "expired"


def test_eu_l0_ectl_refused_with_another_anchor():
    with pytest.raises(T.TrustListError) as e:
        T.TrustStore.with_anchor(Certificate.load(TLM_FR_L1)).with_ectl(ECTL_L0.read_bytes(), L0_NOW)
    assert e.value.reason == "signer-unknown"


def test_fr_l1_ctl():
    store = T.TrustStore.with_anchor(Certificate.load(TLM_FR_L1)).with_ectl(CTL_FR_L1.read_bytes(), FR_NOW)
    names = sorted(r.certificate.name for r in store.roots.values())
    assert names == ["2_FR-ROOT-CA_L1", "VWG_CAR2X_LIVE_PRD_ROOTCA_002"]
    assert len(store.dcs) == 2
    assert store.cpoc == "http://scoopfr-itss.preprod.din.developpement-durable.gouv.fr/"


def _flip_all(raw: bytes, apply, positions) -> tuple[dict, list[int]]:
    reasons: dict[str, int] = {}
    accepted = []
    for i in positions:
        b = bytearray(raw)
        b[i] ^= 0x01
        try:
            apply(bytes(b))
            accepted.append(i)
        except T.TrustListError as e:
            assert e.reason in T.REASONS
            reasons[e.reason] = reasons.get(e.reason, 0) + 1
    return reasons, accepted


@pytest.mark.slow
def test_fr_l1_ctl_every_flipped_byte_refused():
    raw = CTL_FR_L1.read_bytes()
    store = T.TrustStore.with_anchor(Certificate.load(TLM_FR_L1))
    reasons, accepted = _flip_all(raw, lambda b: store.with_ectl(b, FR_NOW), range(len(raw)))
    assert accepted == []
    assert reasons["invalid-signature"] > 900


@pytest.mark.slow
def test_eu_l0_ectl_flipped_bytes_refused_sample():
    """Every 23rd byte plus the whole envelope head and signature of the 11 962-byte ECTL."""
    raw = ECTL_L0.read_bytes()
    store = T.TrustStore.with_anchor(l0_tlm())
    positions = sorted(set(range(0, 40)) | set(range(0, len(raw), 23)) | set(range(len(raw) - 100, len(raw))))
    reasons, accepted = _flip_all(raw, lambda b: store.with_ectl(b, L0_NOW), positions)
    assert accepted == []
    assert {"invalid-signature", "malformed"} <= set(reasons)


def test_describe_l0_for_the_cli():
    tl = T.parse_trust_list(ECTL_L0.read_bytes())
    out = T.describe(tl, L0_NOW)
    assert (out["kind"], out["sequence"], out["isFull"]) == ("ectl", 22, True)
    assert out["signer"]["hashedId8"] == "8ffe810bdb0d71e6" and out["signatureValid"] is True
    assert out["validAtNow"] is True and len(out["rootCAs"]) == 25 and len(out["dcs"]) == 21
    late = T.describe(tl, clock.time32_to_posix(L0_NEXT_UPDATE) + 10)
    assert (late["signatureValid"], late["validAtNow"], late["reason"]) == (True, False, "expired")


# ====================================================================== synthetic chain: TLM -> ETSI root -> EA/AA

EA, AA, AA2 = cert("CERT_TS_A_EA"), cert("CERT_IUT_A_AA"), cert("CERT_TS_A_AA")
DC = "http://dc.test/"


@pytest.fixture(scope="module")
def tlm():
    return A.make_tlm()


@pytest.fixture(scope="module")
def root():
    return A.etsi_root()


@pytest.fixture(scope="module")
def base(tlm, root):
    """Store with the test ECTL applied (root + DC)."""
    data = A.ectl(
        tlm,
        5,
        [A.add_rca(root.certificate), A.add_dc(DC, root.certificate), A.add_tlm(tlm.certificate, "http://cpoc.test/")],
    )
    return T.TrustStore.with_anchor(tlm.certificate).with_ectl(data, A.NOW)


def full_ctl(root, seq=1, **kw):
    return A.rca_ctl(
        root,
        seq,
        [A.add_ea(EA, "http://ea.test/aa", "http://ea.test/its"), A.add_aa(AA, "http://aa.test/"), A.add_dc(DC)],
        **kw,
    )


def test_ctl_full_then_delta(base, root):
    rh = signer_hashed_id8(root.certificate)
    assert base.dcs == {DC: (rh,)} and base.cpoc == "http://cpoc.test/"
    s1 = base.with_ctl(full_ctl(root), A.NOW)
    kind, ea, under = s1.authority(EA.hashed_id8)
    assert (kind, ea.url, ea.its_url, under) == ("ea", "http://ea.test/aa", "http://ea.test/its", rh)
    assert s1.authority(AA.hashed_id8)[1].url == "http://aa.test/"
    delta = A.rca_ctl(root, 2, [("delete", ("cert", AA.hashed_id8)), A.add_aa(AA2, "http://aa2.test/")], full=False)
    s2 = s1.with_ctl(delta, A.NOW)
    assert s2.authority(AA.hashed_id8) is None
    assert s2.authority(AA2.hashed_id8)[1].url == "http://aa2.test/"
    assert s2.authority(EA.hashed_id8) is not None
    assert s1.authority(AA.hashed_id8) is not None  # the earlier snapshot is untouched
    # a new full list replaces everything of that root
    s3 = s2.with_ctl(A.rca_ctl(root, 3, [A.add_ea(EA, "http://ea.test/aa")]), A.NOW)
    assert s3.authority(AA2.hashed_id8) is None and s3.roots[rh].ctl.sequence == 3


@pytest.mark.parametrize(
    "case,reason",
    [
        ("gap", "sequence-gap"),
        ("rollback", "sequence-rollback"),
        ("conflict", "sequence-conflict"),
        ("delta-first", "delta-without-base"),
        ("expired", "expired"),
        ("root-in-ctl", "profile-violation"),
        ("delete-in-full", "profile-violation"),
        ("foreign-ea", "wrong-issuer"),
        ("wrong-psid", "wrong-psid"),
        ("tlm-signed", "signer-unknown"),
        ("crl-as-ctl", "wrong-content"),
    ],
)
def test_ctl_refusals(base, root, tlm, case, reason):
    s1 = base.with_ctl(full_ctl(root, seq=10), A.NOW)
    start = s1
    if case == "gap":
        data = A.rca_ctl(root, 12, [A.add_aa(AA2, "http://x/")], full=False)
    elif case == "rollback":
        data = full_ctl(root, seq=9)
    elif case == "conflict":
        data = A.rca_ctl(root, 10, [A.add_aa(AA2, "http://x/")])
    elif case == "delta-first":
        start, data = base, A.rca_ctl(root, 11, [A.add_aa(AA2, "http://x/")], full=False)
    elif case == "expired":
        data = full_ctl(root, seq=11, next_update=A.T32 - 1)
    elif case == "root-in-ctl":
        data = A.rca_ctl(root, 11, [A.add_rca(root.certificate)])
    elif case == "delete-in-full":
        data = A.rca_ctl(root, 11, [("delete", ("cert", AA.hashed_id8))])
    elif case == "foreign-ea":  # an EA certificate issued by another root (here: the EC, issued by the EA)
        data = A.rca_ctl(root, 11, [A.add_ea(cert("CERT_TS_A_EC"), "http://x/")])
    elif case == "wrong-psid":
        data = A.signed_list(root, "certificateTrustListRca", A.ctl_body(11, []), psid=623)
    elif case == "tlm-signed":
        data = A.signed_list(tlm, "certificateTrustListRca", A.ctl_body(11, []))
    else:
        data = A.crl(root, [])
    with pytest.raises(T.TrustListError) as e:
        start.with_ctl(data, A.NOW)
    assert e.value.reason == reason
    assert start.authority(EA.hashed_id8) == s1.authority(EA.hashed_id8) or start is base


@pytest.mark.parametrize("kind", ["ctl", "crl"])
def test_root_list_signed_by_self_is_a_profile_violation(base, root, kind):
    """A CTL or CRL signed with signer "self" is refused with a reason (it was an AttributeError: the root
    was looked up by a signer id the list does not have)."""
    data = A.rca_ctl(root, 11, [], form="self") if kind == "ctl" else A.crl(root, [], form="self")
    with pytest.raises(T.TrustListError) as e:
        base.with_ctl(data, A.NOW) if kind == "ctl" else base.with_crl(data, A.NOW)
    assert e.value.reason == "profile-violation"


def test_crl_revokes_and_refusals(base, root):
    s1 = base.with_ctl(full_ctl(root), A.NOW)
    s2 = s1.with_crl(A.crl(root, [AA.hashed_id8]), A.NOW)
    assert s2.is_revoked(AA.hashed_id8) and s2.authority(AA.hashed_id8) is None
    assert s2.authority(EA.hashed_id8) is not None
    s3 = s2.with_crl(A.crl(root, [], this_update=A.T32 - 60), A.NOW)  # empty list clears
    assert not s3.is_revoked(AA.hashed_id8)
    for data, reason in (
        (A.crl(root, [], this_update=A.T32 - 7200), "crl-rollback"),
        (A.crl(root, [], next_update=A.T32 - 1), "expired"),
        (A.crl(root, [], this_update=A.T32 + 600), "not-yet-valid"),
        (A.crl(A.make_tlm("other"), []), "signer-unknown"),
    ):
        with pytest.raises(T.TrustListError) as e:
            s3.with_crl(data, A.NOW)
        assert e.value.reason == reason


def test_ectl_signer_permissions_and_rollover(root):
    weak = A.make_tlm("weak", ssp=b"\x01\x88")  # TLM + DC rights, no RCA right
    with pytest.raises(T.TrustListError) as e:
        T.TrustStore.with_anchor(weak.certificate).with_ectl(A.ectl(weak, 0, [A.add_rca(root.certificate)]), A.NOW)
    assert e.value.reason == "signer-permissions"
    old, new, rogue = A.make_tlm("old"), A.make_tlm("new"), A.make_tlm("rogue")
    store = T.TrustStore.with_anchor(old.certificate)
    with pytest.raises(T.TrustListError) as e:  # the new TLM is not trusted before a link
        store.with_ectl(A.ectl(new, 0, [A.add_rca(root.certificate)]), A.NOW)
    assert e.value.reason == "signer-unknown"
    linked = store.with_ectl(
        A.ectl(
            old,
            7,
            [A.add_rca(root.certificate), A.add_tlm(new.certificate, "http://cpoc/", successor_to=old.certificate)],
        ),
        A.NOW,
    )
    after = linked.with_ectl(A.ectl(new, 0, [A.add_rca(root.certificate)]), A.NOW)
    assert signer_hashed_id8(root.certificate) in after.roots and after.ectl.signer == signer_hashed_id8(
        new.certificate
    )
    with pytest.raises(T.TrustListError) as e:
        linked.with_ectl(A.ectl(rogue, 0, [A.add_rca(root.certificate)]), A.NOW)
    assert e.value.reason == "signer-unknown"
    with pytest.raises(T.TrustListError) as e:  # an inline certificate that is not the trusted one
        forged = A.ectl(old, 8, [A.add_rca(root.certificate)])
        store.with_ectl(forged.replace(old.certificate.raw, rogue.certificate.raw), A.NOW)
    assert e.value.reason in ("signer-unknown", "signer-mismatch")


def test_ectl_delta_deletes_root(base, tlm, root):
    s1 = base.with_ctl(full_ctl(root), A.NOW)
    rh = signer_hashed_id8(root.certificate)
    s2 = s1.with_ectl(A.ectl(tlm, 6, [("delete", ("cert", rh)), ("delete", ("dc", DC))], full=False), A.NOW)
    assert rh not in s2.roots and s2.authority(EA.hashed_id8) is None and DC not in s2.dcs
    assert s1.root(rh, A.NOW) is not None


def test_new_full_ectl_keeps_the_state_of_roots_still_listed(base, tlm, root):
    s1 = base.with_ctl(full_ctl(root), A.NOW).with_crl(A.crl(root, [AA2.hashed_id8]), A.NOW)
    s2 = s1.with_ectl(A.ectl(tlm, 6, [A.add_rca(root.certificate), A.add_dc(DC, root.certificate)]), A.NOW)
    assert s2.authority(EA.hashed_id8) is not None and s2.is_revoked(AA2.hashed_id8)
    assert s2.ectl.sequence == 6 and s2.cpoc is None  # the new list has no TLM entry


def test_digest_signed_ectl(tlm, root):
    data = A.ectl(tlm, 0, [A.add_rca(root.certificate)], form="digest")
    store = T.TrustStore.with_anchor(tlm.certificate).with_ectl(data, A.NOW)
    assert store.root(signer_hashed_id8(root.certificate), A.NOW) is not None


# ====================================================================== TLM link certificates


def test_tlm_link_certificate_trusts_the_new_tlm(root):
    old, new, rogue = A.make_tlm("link-old"), A.make_tlm("link-new"), A.make_tlm("link-rogue")
    store = T.TrustStore.with_anchor(old.certificate).with_ectl(A.ectl(old, 3, [A.add_rca(root.certificate)]), A.NOW)
    with pytest.raises(T.TrustListError) as e:  # not trusted before the link
        store.with_ectl(A.ectl(new, 0, [A.add_rca(root.certificate)]), A.NOW)
    assert e.value.reason == "signer-unknown"
    for form in ("certificate", "digest"):
        linked, raw = store.with_tlm_link(
            A.tlm_link(old, new.certificate, form=form), [rogue.certificate.raw, new.certificate.raw], A.NOW
        )
        assert raw == new.certificate.raw and signer_hashed_id8(new.certificate) in linked.tlms
    after = linked.with_ectl(A.ectl(new, 0, [A.add_rca(root.certificate)]), A.NOW)
    assert after.ectl.signer == signer_hashed_id8(new.certificate)
    # a full ECTL of the old TLM again does not forget the linked one (it is trusted like an anchor)
    again = linked.with_ectl(A.ectl(old, 4, [A.add_rca(root.certificate)]), A.NOW)
    assert signer_hashed_id8(new.certificate) in again.tlms
    assert store.tlms.keys() == {signer_hashed_id8(old.certificate)}  # the old store unchanged (immutable)


@pytest.mark.parametrize(
    "case, reason",
    [
        ("unsigned", "not-signed"),
        ("signed-by-rogue", "signer-unknown"),
        ("inline-swapped", "invalid-signature"),
        ("expired", "expired"),
        ("other-certificate", "link-mismatch"),
        ("sha384-for-p256", "link-mismatch"),
        ("wrong-psid", "wrong-psid"),
        ("a-ctl", "wrong-content"),
        ("no-tlm-right", "signer-permissions"),
        ("new-not-a-tlm", "entry-invalid"),
    ],
)
def test_tlm_link_refusals(root, case, reason):
    old, new, rogue = A.make_tlm("link-old"), A.make_tlm("link-new"), A.make_tlm("link-rogue")
    store = T.TrustStore.with_anchor(old.certificate)
    candidates = [new.certificate.raw]
    if case == "unsigned":
        from rsu.pki import coer

        data = coer.encode("Ieee1609Dot2Data", {"protocolVersion": 3, "content": ("unsecuredData", b"\x01\x8a")})
    elif case == "signed-by-rogue":
        data = A.tlm_link(rogue, new.certificate)
    elif case == "inline-swapped":  # another trusted TLM put inline: its key does not verify
        data = A.tlm_link(old, new.certificate).replace(old.certificate.raw, rogue.certificate.raw)
        store = T.TrustStore.with_anchor(old.certificate, rogue.certificate)
    elif case == "expired":
        data = A.tlm_link(old, new.certificate, expiry=A.T32 - 60)
    elif case == "other-certificate":
        data = A.tlm_link(old, rogue.certificate)
    elif case == "sha384-for-p256":
        data = A.tlm_link(old, new.certificate, hash_name="sha384")
    elif case == "wrong-psid":
        data = A.tlm_link(old, new.certificate, psid=622)
    elif case == "a-ctl":
        data = A.ectl(old, 3, [A.add_rca(root.certificate)])
    elif case == "no-tlm-right":
        weak = A.make_tlm("link-weak", ssp=b"\x01\x48")
        store, data = T.TrustStore.with_anchor(weak.certificate), A.tlm_link(weak, new.certificate)
    else:
        data, candidates = A.tlm_link(old, root.certificate), [root.certificate.raw]
    with pytest.raises(T.TrustListError) as e:
        store.with_tlm_link(data, candidates, A.NOW)
    assert e.value.reason == reason, e.value


def test_tlm_link_every_flipped_byte_refused():
    old, new = A.make_tlm("link-old"), A.make_tlm("link-new")
    store = T.TrustStore.with_anchor(old.certificate)
    data = A.tlm_link(old, new.certificate)
    store.with_tlm_link(data, [new.certificate.raw], A.NOW)  # the original is accepted
    for i in range(len(data)):
        flipped = data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]
        with pytest.raises(T.TrustListError) as e:
            store.with_tlm_link(flipped, [new.certificate.raw], A.NOW)
        assert e.value.reason in T.REASONS
