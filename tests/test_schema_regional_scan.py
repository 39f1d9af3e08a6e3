"""rsu.codec.schema.scan_regional_facts looks for RegionalExtension fields only in the assignments that name
RegionalExtension: the same facts as searching every assignment (the reference below), on our modules and on
generated module texts."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rsu.codec import schema
from rsu.codec.asn1files import compile_set


def reference(sources: dict[str, str]) -> schema.RegionalFacts:
    """The scan as it was: _REG_FIELD searched in every assignment."""
    field_sets: dict[tuple[str, str], str] = {}
    set_members: dict[str, dict[str, str]] = {}
    for text in sources.values():
        text = schema.strip_comments(text)
        for name, governor, body in schema._assignments(text):
            for m in schema._REG_FIELD.finditer(body):
                field_sets[(name, m.group(1))] = m.group(2)
            if governor == "REG-EXT-ID-AND-TYPE":
                members = {
                    obj.group(2): obj.group(1).split(".")[-1] for obj in schema._OBJECT.finditer(schema._balanced(body))
                }
                set_members[name] = members
    return schema.RegionalFacts(field_sets, set_members)


def test_our_modules_give_the_reference_facts():
    for name in ("is", "security"):
        sources = compile_set(name, "oer" if name == "security" else "uper").sources
        assert schema.scan_regional_facts(sources) == reference(sources)
    facts = schema.scan_regional_facts(compile_set("is", "uper").sources)
    assert facts.field_sets and facts.set_members  # the IS modules do have regional extensions


_NAMES = st.sampled_from(["regional", "lanes", "extensions", "reg-x", "id"])
_SETS = st.sampled_from(["Reg-MapData", "Reg-SPAT", "Reg-Lane", "RegX"])
_FIELD = st.one_of(
    st.builds(lambda n, s: f"{n} RegionalExtension {{{{{s}}}}}", _NAMES, _SETS),
    st.builds(lambda n, s: f"{n} SEQUENCE (SIZE(1..4)) OF RegionalExtension {{{{ {s} }}}} OPTIONAL", _NAMES, _SETS),
    st.builds(lambda n: f"{n} INTEGER (0..255)", _NAMES),
    st.just("-- RegionalExtension {{Reg-Commented}}"),
    st.just("regional RegionalExtension"),  # no parameter: not a field
)
_ASSIGNMENT = st.one_of(
    st.builds(
        lambda t, fields: f"{t} ::= SEQUENCE {{\n  " + ",\n  ".join(fields) + "\n}",
        st.sampled_from(["MapData", "Lane", "Spat-X", "T1"]),
        st.lists(_FIELD, max_size=4),
    ),
    st.builds(
        lambda s, objs: f"{s} REG-EXT-ID-AND-TYPE ::= {{ " + " | ".join(objs) + " , ... }",
        _SETS,
        st.lists(
            st.builds(
                lambda t, r: f"{{ {t} IDENTIFIED BY {r} }}",
                st.sampled_from(["Mod.TypeA", "TypeB", "Addgrp-C.Thing"]),
                st.sampled_from(["addGrpA", "addGrpC", "region1"]),
            ),
            max_size=3,
        ),
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["a.asn", "b.asn"]), st.lists(_ASSIGNMENT, max_size=6).map("\n\n".join)))
def test_generated_modules_give_the_reference_facts(sources):
    assert schema.scan_regional_facts(sources) == reference(sources)
