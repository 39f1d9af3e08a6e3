"""Content hashes and content comparison of the MAPEM and IVI services, fast paths against the reference.

The revision counters store the hash of the content they were given for (``rlt.rev.*``, ``rlt.msg.*``):
the hash must stay exactly ``canonical_hash`` of the same value, or an upgrade would count unchanged
content as changed and move revisions vehicles already hold. The MAPEM service serialises each element
once and composes the message's hash from those texts; content changes are told by comparing values.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import pdu_strategy, seeded

from rsu import catalog
from rsu.services import ivi, rlt
from rsu.services.model import canonical_hash, object_text, text_hash, value_from_json, value_to_json
from services.support import example

SETTINGS = seeded(150)


def reference_hashes(mapdata: dict) -> tuple[list[str], str]:
    """The hashes as the service computed them before (one ``canonical_hash`` of each stripped value)."""
    elements = [
        canonical_hash({k: v for k, v in mapdata[member][i].items() if k != "revision"})
        for member, i, _ in rlt.element_keys(mapdata)
    ]
    whole = canonical_hash({k: v for k, v in mapdata.items() if k not in ("msgIssueRevision", "timeStamp")})
    return elements, whole


def composed_hashes(mapdata: dict) -> tuple[list[str], str]:
    parts = rlt.element_texts(mapdata)
    elements = [text_hash(object_text(parts[member][i])) for member, i, _ in rlt.element_keys(mapdata)]
    return elements, rlt.message_hash(mapdata, parts)


@pytest.fixture(scope="module")
def mapem_values(codec):
    return pdu_strategy(codec, catalog.MAPEM, max_depth=8)


def test_stored_hashes_of_the_example_are_those_of_earlier_versions(layer):
    """The counters' hashes of the example MAPEM, as every earlier version stored them."""
    layer.trigger("rlt", {"payload": example("mapem")})
    counters = layer.store.counters()
    assert counters["rlt.rev.1201"] == (3, "efc84787b7fb499337c7305c07563081")
    assert counters["rlt.msg.1201"][1] == "10f765d44f607c6dcc8058576fd61ab1"


@given(data=st.data())
@SETTINGS
def test_composed_hashes_equal_the_reference(codec, mapem_values, data):
    value = data.draw(mapem_values)
    m = value["map"]
    assert composed_hashes(m) == reference_hashes(m)
    # and for elements without members beyond the mandatory ones, or a message without elements
    for member, _, _ in rlt._ELEMENTS:
        m.pop(member, None)
    assert composed_hashes(m) == reference_hashes(m)


def _same_content_both_ways(content, a: dict, b: dict) -> None:
    assert (content(a) == content(b)) == (canonical_hash(content(a)) == canonical_hash(content(b)))


@pytest.mark.parametrize(("kind", "content"), [(catalog.MAPEM, rlt._content), (catalog.IVIM, ivi._content)])
def test_value_equality_is_hash_equality(codec, kind, content):
    """Comparing values tells content changes exactly as comparing their hashes did, also against a value
    read back from UPER or from the stored JSON (as after a restart)."""
    strategy = pdu_strategy(codec, kind, max_depth=8)

    @given(a=strategy, b=strategy)
    @SETTINGS
    def check(a, b):
        payload = codec.encode(a, kind, validate=False)
        for again in (codec.decode(payload).value, value_from_json(value_to_json(a, payload), payload), b):
            _same_content_both_ways(content, a, again)
        assert content(codec.decode(payload).value) == content(a)

    check()
