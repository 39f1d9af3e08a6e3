"""Secrets come from files; errors name the field and the file, never what is in it."""

from __future__ import annotations

import pytest

from rsu.secretfile import read_secret_file


def test_first_line_only(tmp_path):
    f = tmp_path / "pass"
    f.write_text("s3cret\nsecond line\n")
    assert read_secret_file(f) == "s3cret"
    (tmp_path / "empty").write_text("")
    assert read_secret_file(tmp_path / "empty") == ""


def test_errors_name_field_and_file_not_content(tmp_path):
    with pytest.raises(KeyError) as err:
        read_secret_file(tmp_path / "missing", "ntrip.password_file", error=KeyError)
    assert "ntrip.password_file: cannot read" in str(err.value) and "missing" in str(err.value)
    f = tmp_path / "binary"
    f.write_bytes(b"\xff\xfeS3CRET")
    with pytest.raises(ValueError) as err:
        read_secret_file(f)
    assert "S3CRET" not in str(err.value) and "UnicodeDecodeError" in str(err.value)
