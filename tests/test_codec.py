"""Facilities codec: dispatch, typed errors with field paths, regional extensions, the one identifier table."""

from __future__ import annotations

import copy

import pytest

from rsu import catalog
from rsu.codec.errors import CodecError, DecodeError, InvalidValueError, UnknownMessageError
from rsu.codec.facilities import peek_header

SPATEM_VALUE = {
    "header": {"protocolVersion": 2, "messageID": 4, "stationID": 4711},
    "spat": {
        "intersections": [
            {
                "id": {"id": 1201},
                "revision": 3,
                "status": (b"\x00\x00", 16),
                "states": [
                    {"signalGroup": 1, "state-time-speed": [{"eventState": "protected-Movement-Allowed"}]},
                    {"signalGroup": 2, "state-time-speed": [{"eventState": "stop-And-Remain"}]},
                    {"signalGroup": 3, "state-time-speed": [{"eventState": "stop-And-Remain"}]},
                    {"signalGroup": 4, "state-time-speed": [{"eventState": "permissive-clearance"}]},
                ],
                "regional": [
                    {
                        "regionId": 3,
                        "regExtValue": {
                            "activePrioritizations": [{"stationID": 99, "priorState": "granted", "signalGroup": 2}]
                        },
                    }
                ],
            }
        ]
    },
}


def spatem():
    return copy.deepcopy(SPATEM_VALUE)


def test_identifier_table_matches_asn1_named_numbers(codec):
    """messageID numbers in rsu.catalog equal the named numbers of ItsPduHeader.messageID in our ASN.1."""
    header = codec.schema.pdu("ItsPduHeader")
    named = header.member_map["messageID"].node.named_numbers
    for kind in catalog.MESSAGES:
        assert named[kind.name] == kind.message_id
        pdu = codec.schema.pdu(kind.pdu)
        assert [m.name for m in pdu.members] == ["header", kind.body]


def test_identifier_table_is_unique():
    for attr in ("message_id", "its_aid", "btp_port", "name", "pdu"):
        values = [getattr(k, attr) for k in catalog.MESSAGES]
        assert len(values) == len(set(values)), attr


def test_round_trip_with_typed_regional_extension(codec):
    data = codec.encode(spatem())
    pdu = codec.decode(data)
    assert pdu.kind is catalog.SPATEM
    assert pdu.value == SPATEM_VALUE
    ext = pdu.body["intersections"][0]["regional"][0]
    assert ext["regExtValue"]["activePrioritizations"][0]["priorState"] == "granted"  # typed, not bytes
    assert peek_header(data).station_id == 4711


def test_regional_extension_jer_is_typed(codec):
    jer = codec.to_jer(catalog.SPATEM, spatem())
    ext = jer["spat"]["intersections"][0]["regional"][0]
    assert ext == {
        "regionId": 3,
        "regExtValue": {"activePrioritizations": [{"stationID": 99, "priorState": "granted", "signalGroup": 2}]},
    }
    kind, value = codec.from_jer(jer)
    assert kind is catalog.SPATEM and value == SPATEM_VALUE


def test_unknown_region_stays_raw_bytes(codec):
    value = spatem()
    value["spat"]["intersections"][0]["regional"] = [{"regionId": 77, "regExtValue": b"\x12\x34"}]
    pdu = codec.decode(codec.encode(value))
    assert pdu.body["intersections"][0]["regional"][0] == {"regionId": 77, "regExtValue": b"\x124"}
    jer = codec.to_jer(catalog.SPATEM, pdu.value)
    assert jer["spat"]["intersections"][0]["regional"][0]["regExtValue"] == "1234"


@pytest.mark.parametrize(
    "mutate, path, reason",
    [
        (
            lambda v: v["spat"]["intersections"][0]["states"][3].__setitem__("signalGroup", 300),
            "spat.intersections[0].states[3].signalGroup",
            "300 > 255",
        ),
        (
            lambda v: v["spat"]["intersections"][0]["states"][1]["state-time-speed"][0].__setitem__(
                "eventState", "green"
            ),
            "spat.intersections[0].states[1].state-time-speed[0].eventState",
            "unknown value 'green'",
        ),
        (lambda v: v["spat"]["intersections"][0].pop("revision"), "spat.intersections[0].revision", "missing"),
        (
            lambda v: v["spat"]["intersections"][0].__setitem__("colour", 1),
            "spat.intersections[0].colour",
            "unknown field",
        ),
        (
            lambda v: v["spat"]["intersections"][0].__setitem__("status", (b"\x00", 16)),
            "spat.intersections[0].status",
            "needs 2 bytes",
        ),
        (
            lambda v: v["spat"]["intersections"][0].__setitem__("status", (b"\x00\x00\x00", 24)),
            "spat.intersections[0].status",
            "24 > 16",
        ),
        (
            lambda v: v["spat"]["intersections"][0].__setitem__("id", ("id", 5)),
            "spat.intersections[0].id",
            "expected an object",
        ),
        (
            lambda v: v["spat"]["intersections"][0].__setitem__("name", "x" * 64),
            "spat.intersections[0].name",
            "length 64 > 63",
        ),
        (
            lambda v: v["spat"]["intersections"][0].__setitem__("states", []),
            "spat.intersections[0].states",
            "number of items 0 < 1",
        ),
        (
            lambda v: v["spat"]["intersections"][0]["regional"][0]["regExtValue"].__setitem__("bogus", 1),
            "spat.intersections[0].regional[0].regExtValue.bogus",
            "unknown field",
        ),
        (lambda v: v["header"].__setitem__("stationID", -1), "header.stationID", "-1 < 0"),
        (lambda v: v["header"].__setitem__("messageID", 5), "header.messageID", "does not match SPATEM"),
        (lambda v: v["header"].__setitem__("protocolVersion", 1), "header.protocolVersion", "not the version"),
    ],
)
def test_invalid_values_name_the_field(codec, mutate, path, reason):
    value = spatem()
    mutate(value)
    with pytest.raises(InvalidValueError) as err:
        codec.encode(value, catalog.SPATEM)
    assert err.value.path == path
    assert reason in err.value.reason
    assert str(err.value).startswith(path + ": ")


def test_jer_errors_name_the_field(codec):
    jer = codec.to_jer(catalog.SPATEM, spatem())
    jer["spat"]["intersections"][0]["status"] = "zz00"
    with pytest.raises(InvalidValueError) as err:
        codec.from_jer(jer, catalog.SPATEM)
    assert err.value.path == "spat.intersections[0].status"
    jer["spat"]["intersections"][0]["status"] = "000000"
    with pytest.raises(InvalidValueError, match="16 bits as 2 bytes"):
        codec.from_jer(jer, catalog.SPATEM)
    jer["spat"]["intersections"][0]["status"] = "0000"
    jer["spat"]["intersections"][0]["id"] = {"id": 1, "region": 2, "x": 3}
    with pytest.raises(InvalidValueError, match=r"^spat\.intersections\[0\]\.id\.x: unknown field"):
        codec.from_jer(jer, catalog.SPATEM)


def test_jer_requires_a_known_message(codec):
    with pytest.raises(InvalidValueError, match="header.messageID"):
        codec.from_jer({"header": {"protocolVersion": 2, "messageID": 2, "stationID": 1}, "cam": {}})
    with pytest.raises(InvalidValueError, match="header"):
        codec.from_jer([1, 2, 3])


def test_decode_dispatches_on_message_id_and_version(codec):
    data = codec.encode(spatem())
    with pytest.raises(UnknownMessageError) as err:
        codec.decode(bytes([2, 2]) + data[2:])
    assert err.value.message_id == 2 and "unknown messageID 2" in str(err.value)
    with pytest.raises(UnknownMessageError) as err:
        codec.decode(bytes([1]) + data[1:])
    assert err.value.protocol_version == 1 and "SPATEM protocolVersion 1" in str(err.value)


def test_decode_errors_say_what_and_where(codec):
    data = codec.encode(spatem())
    with pytest.raises(DecodeError, match="truncated ItsPduHeader: 3 of 6 bytes"):
        codec.decode(data[:3])
    with pytest.raises(DecodeError, match=r"malformed SPATEM: .*bit offset"):
        codec.decode(data[:-4])
    with pytest.raises(DecodeError, match="2 trailing bytes after a"):
        codec.decode(data + b"\x00\x00")


def test_every_error_is_a_codec_error():
    for cls in (DecodeError, UnknownMessageError, InvalidValueError):
        assert issubclass(cls, CodecError)


def test_every_regional_extension_field_has_a_known_set(codec):
    """Every RegionalExtension field in the DSRC types resolves to a Reg-* set; addGrpC ones are typed."""
    schema = codec.schema
    seen = set()
    for node in schema.all_named():
        stack = [node]
        while stack:
            n = stack.pop()
            if id(n) in seen:
                continue
            seen.add(id(n))
            if n.kind == "REGEXT":
                assert n.regset in schema.regional.set_members, n.regset
                schema.regset_types(n.regset)  # resolves every member type or raises
            stack.extend(m.node for m in n.members)
            if n.element is not None:
                stack.append(n.element)
    typed = {name for name, members in schema.regional.set_members.items() if members}
    assert "Reg-IntersectionState" in typed and "Reg-MapData" in typed
    assert schema.region_ids["addGrpC"] == 3


def test_value_range_union_is_encoded_by_its_effective_range(codec):
    """GDD Distance.unit is Code-Units (2..4|6..8): X.691 encodes it over 2..8 (3 bits), as pycrate does.

    asn1tools on its own keeps only the first range (2 bits, and rejects 6..8); rsu.codec.asn1files
    rewrites unions to their effective range before compiling, and our validation keeps the exact union.
    """
    pycrate = pytest.importorskip("pycrate_asn1dir.ITS_IS")
    from rsu.codec import values as V

    oracle = pycrate.GDD.Distance
    node = codec.schema.pdu("Distance")
    for unit in (2, 3, 4, 6, 7, 8):
        value = {"value": 250, "unit": unit}
        V.validate(codec.schema, node, value)
        ours = codec._spec.encode("Distance", value)
        oracle.set_val(value)
        assert ours == oracle.to_uper(), unit
        assert codec._spec.decode("Distance", ours) == value
    with pytest.raises(InvalidValueError, match=r"^unit: 5 is not in 2\.\.4 \| 6\.\.8"):
        V.validate(codec.schema, node, {"value": 250, "unit": 5})


def test_jer_of_an_extensible_single_size_bit_string(codec):
    """LaneAttributes-Vehicle is BIT STRING (SIZE(8, ...)): at its root size it prints as bare hex (as
    pycrate and asn1tools print it); a length outside the root needs {"value", "length"}. Both forms
    are read."""
    from rsu.codec import values as V

    node = codec.schema.pdu("LaneAttributes-Vehicle")
    assert V.to_jer(codec.schema, node, (b"\xa0", 8)) == "a0"
    assert V.to_jer(codec.schema, node, (b"\xa5\xf0", 12)) == {"value": "a5f0", "length": 12}
    assert V.from_jer(codec.schema, node, "a0") == (b"\xa0", 8)
    assert V.from_jer(codec.schema, node, {"value": "a0", "length": 8}) == (b"\xa0", 8)
    assert V.from_jer(codec.schema, node, {"value": "a5f0", "length": 12}) == (b"\xa5\xf0", 12)
    with pytest.raises(InvalidValueError, match="root bits"):
        V.from_jer(codec.schema, node, "a0b0")


def test_asn1tools_jer_reads_what_we_print_for_lane_attributes(codec):
    """asn1tools' own JER codec (compiled from our module's definition of LaneAttributes-Vehicle)
    prints and reads the bare hex we print at the root size; it refused the {"value", "length"} form
    we printed before."""
    import json
    import re

    import asn1tools

    from rsu.codec import values as V
    from rsu.codec.asn1files import asn1_root

    source = (asn1_root() / "is" / "iso19091-dsrc.asn").read_text()
    definition = re.search(r"LaneAttributes-Vehicle ::= BIT STRING \{.*?\} \(SIZE\(8, \.\.\.\)\)", source, re.S)
    spec = asn1tools.compile_string(f"M DEFINITIONS ::= BEGIN {definition.group(0)} END", "jer")
    node = codec.schema.pdu("LaneAttributes-Vehicle")
    ours = json.dumps(V.to_jer(codec.schema, node, (b"\x21", 8))).encode()
    assert spec.decode("LaneAttributes-Vehicle", ours) == (b"\x21", 8)
    assert json.loads(spec.encode("LaneAttributes-Vehicle", (b"\x21", 8))) == json.loads(ours)
