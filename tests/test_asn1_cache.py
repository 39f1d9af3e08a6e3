"""The compiled ASN.1 set is cached on disk, keyed by content: later start-ups do not parse again."""

from __future__ import annotations

import shutil

import asn1tools
import pytest

from rsu.codec import asn1files


@pytest.fixture
def private_tree(tmp_path, monkeypatch):
    """A private copy of asn1/is and an empty cache directory; the process memo is cleared around the test."""
    src = asn1files.asn1_root() / "is"
    shutil.copytree(src, tmp_path / "asn1" / "is")
    monkeypatch.setenv("RSU_ASN1_DIR", str(tmp_path / "asn1"))
    monkeypatch.setenv("RSU_CACHE_DIR", str(tmp_path / "cache"))
    saved = dict(asn1files._memo)
    asn1files._memo.clear()
    yield tmp_path
    asn1files._memo.clear()
    asn1files._memo.update(saved)


def test_second_start_loads_the_cache_without_parsing(private_tree, monkeypatch):
    first = asn1files.compile_set("is")
    cached = list((private_tree / "cache").glob("is-uper-*.pickle"))
    assert len(cached) == 1

    asn1files._memo.clear()

    def no_parse(*args, **kwargs):
        raise AssertionError("parsed again although the cache is valid")

    monkeypatch.setattr(asn1tools, "parse_string", no_parse)
    second = asn1files.compile_set("is")
    assert second.digest == first.digest
    assert second.spec.encode("ItsPduHeader", {"protocolVersion": 2, "messageID": 4, "stationID": 7}) == bytes(
        [2, 4, 0, 0, 0, 7]
    )


def test_editing_a_module_invalidates_the_cache(private_tree):
    first = asn1files.compile_set("is")
    module = private_tree / "asn1" / "is" / "ts103301-pdus.asn"
    module.write_text(module.read_text() + "\n-- an operator's comment\n")
    asn1files._memo.clear()
    second = asn1files.compile_set("is")
    assert second.digest != first.digest
    assert len(list((private_tree / "cache").glob("is-uper-*.pickle"))) == 2


def test_corrupt_cache_file_is_rebuilt(private_tree):
    asn1files.compile_set("is")
    (cache_file,) = (private_tree / "cache").glob("is-uper-*.pickle")
    cache_file.write_bytes(b"not a pickle")
    asn1files._memo.clear()
    again = asn1files.compile_set("is")
    assert again.spec.encode("ItsPduHeader", {"protocolVersion": 2, "messageID": 5, "stationID": 1})[:2] == b"\x02\x05"


def test_unwritable_cache_directory_still_compiles(private_tree, monkeypatch):
    blocker = private_tree / "not-a-dir"
    blocker.write_text("x")
    monkeypatch.setenv("RSU_CACHE_DIR", str(blocker / "cache"))
    compiled = asn1files.compile_set("is")
    assert "SPATEM" in compiled.spec.types


def test_missing_modules_are_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("RSU_ASN1_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no ASN.1 modules found"):
        asn1files.module_files("is")


def test_the_specification_is_cached_apart_and_loaded_on_first_use(private_tree, monkeypatch):
    compiled = asn1files.compile_set("is")
    assert "spec" not in compiled.__dict__  # the parse tree alone: the schema needs nothing more
    assert len(list((private_tree / "cache").glob("is-uper-*.pickle"))) == 1
    assert "SPATEM" in compiled.spec.types
    assert len(list((private_tree / "cache").glob("is-uper-*.spec.pickle"))) == 1

    asn1files._memo.clear()

    def no_compile(*args, **kwargs):
        raise AssertionError("compiled again although the cache is valid")

    monkeypatch.setattr(asn1tools, "compile_dict", no_compile)
    again = asn1files.compile_set("is")
    assert again.spec.encode("ItsPduHeader", {"protocolVersion": 2, "messageID": 4, "stationID": 7}) == bytes(
        [2, 4, 0, 0, 0, 7]
    )


LAZY = """
import json, sys
from pathlib import Path
from rsu import catalog
from rsu.codec.errors import DecodeError
from rsu.codec.facilities import get_codec

codec = get_codec()
assert codec.uper == "generated", codec.uper
done = 0
for f in sorted(Path("config/examples").glob("*.json")):
    obj = json.loads(f.read_text())
    mid = obj.get("header", {}).get("messageID") if isinstance(obj, dict) else None
    if mid not in catalog.BY_MESSAGE_ID:
        continue
    kind, value = codec.from_jer(obj)
    data = codec.encode(value)
    assert codec.decode(data).value == value
    codec.to_jer(kind, value)
    done += 1
assert done >= 6, done
print(sorted(m for m in sys.modules if m.split(".")[0] in ("asn1tools", "pyparsing")))
try:
    codec.decode(data[:8])  # truncated: the generated decoder leaves it to asn1tools, which names the reason
except DecodeError as e:
    print("DecodeError", "asn1tools" in sys.modules)
"""


def test_the_generated_codec_serves_without_loading_asn1tools():
    import subprocess
    import sys

    from tests.conftest import REPO

    out = subprocess.run(
        [sys.executable, "-c", LAZY], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    ).stdout.splitlines()
    assert out == ["[]", "DecodeError True"]
