"""The asn1tools patches (rsu.codec.asn1patches): the compact BMPString map answers as the dict it replaces."""

from __future__ import annotations

import asn1tools
import pytest
from asn1tools.codecs import per, permitted_alphabet, uper
from hypothesis import given
from hypothesis import strategies as st

from rsu.codec.asn1patches import BmpIdentity

REFERENCE = {ord(c): ord(c) for c in permitted_alphabet.BMP_STRING}  # what asn1tools builds on import

MODULE = """
M DEFINITIONS AUTOMATIC TAGS ::= BEGIN
  Free ::= BMPString
  Sized ::= BMPString (SIZE(1..4))
  Abc ::= BMPString (FROM("abc"))
END
"""


def test_the_per_and_uper_bmpstring_maps_are_replaced():
    for module in (per, uper):
        assert isinstance(module.BMPString.ENCODE_DECODE_MAP, BmpIdentity)
        assert module.BMPString.PERMITTED_ALPHABET.encode_map is module.BMPString.ENCODE_DECODE_MAP


def test_same_length_order_and_members_as_the_dict():
    identity = BmpIdentity()
    assert len(identity) == len(REFERENCE)
    assert list(identity) == list(REFERENCE)
    assert dict(identity.items()) == REFERENCE


@given(st.one_of(st.integers(-10, 0x10010), st.text(max_size=2), st.none()))
def test_lookups_as_the_dict(key):
    identity = BmpIdentity()
    assert (key in identity) == (key in REFERENCE)
    if key in REFERENCE:
        assert identity[key] == REFERENCE[key]
    else:
        with pytest.raises(KeyError):
            identity[key]


@pytest.mark.parametrize("codec", ["per", "uper"])
@given(text=st.text(alphabet=st.characters(max_codepoint=0xFFFF, blacklist_categories=("Cs",)), max_size=6))
def test_bmpstring_encodes_and_decodes_as_utf16(codec, text):
    spec = _spec(codec)
    data = spec.encode("Free", text)
    assert data.endswith(text.encode("utf-16-be"))
    assert spec.decode("Free", data) == text
    if 1 <= len(text) <= 4:
        assert spec.decode("Sized", spec.encode("Sized", text)) == text


@pytest.mark.parametrize("codec", ["per", "uper"])
def test_a_permitted_alphabet_still_constrains(codec):
    spec = _spec(codec)
    assert spec.decode("Abc", spec.encode("Abc", "cab")) == "cab"
    with pytest.raises(asn1tools.EncodeError, match="Expected a character in 'abc'"):
        spec.encode("Abc", "abd")


_SPECS: dict[str, object] = {}


def _spec(codec: str):
    if codec not in _SPECS:
        _SPECS[codec] = asn1tools.compile_string(MODULE, codec)
    return _SPECS[codec]
