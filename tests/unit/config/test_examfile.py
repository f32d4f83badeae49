"""Exam configuration files: Ed25519 signature over the exact bytes, schema, validity window."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from lockdown.config import examfile, keys
from lockdown.config.settings import ConfigError, Organisation

BODY = b"""format = 1
[exam]
id = "physics-2026"
title = "Physics final"
valid_from = 2026-06-01T08:00:00Z
valid_until = 2026-06-01T12:00:00+02:00
[browser]
start_url = "https://exam.example.org/"
url_rules = [{ action = "allow", expression = "https://cdn.example.org/*" }]
[quit]
url = "https://exam.example.org/done"
[guards]
clipboard = "block"
"""
DURING = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def org(key: Ed25519PrivateKey) -> Organisation:
    return Organisation(values={"config.trusted_keys": (keys.public_text(key.public_key()),)})


def test_signed_file_loads_with_meta_and_values(key: Ed25519PrivateKey, org: Organisation) -> None:
    config = examfile.load_bytes(examfile.sign(BODY, key), org, origin="exam.toml", now=DURING)
    assert config.meta.title == "Physics final"
    assert config.meta.valid_until == datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    assert config.values["guards.clipboard"] == "block"
    assert config.values["browser.url_rules"][0]["kind"] == "glob"
    assert config.signed_by == keys.public_text(key.public_key())
    assert config.body == BODY


def test_every_single_byte_change_is_refused(key: Ed25519PrivateKey, org: Organisation) -> None:
    signed = examfile.sign(BODY, key)
    for index in range(0, len(signed), 7):
        changed = bytearray(signed)
        changed[index] ^= 0x01
        with pytest.raises(ConfigError) as exc:
            examfile.load_bytes(bytes(changed), org, origin="exam.toml", now=DURING)
        assert "\n" not in str(exc.value)


def test_untrusted_key_is_refused(key: Ed25519PrivateKey) -> None:
    other = Organisation(
        values={
            "config.trusted_keys": (keys.public_text(Ed25519PrivateKey.generate().public_key()),)
        }
    )
    with pytest.raises(ConfigError, match="signed by an untrusted key"):
        examfile.load_bytes(examfile.sign(BODY, key), other, origin="e", now=DURING)


def test_unsigned_refused_unless_organisation_allows(org: Organisation) -> None:
    with pytest.raises(ConfigError, match="not signed"):
        examfile.load_bytes(BODY, org, origin="e", now=DURING)
    allowing = Organisation(values={"config.allow_unsigned": True})
    assert examfile.load_bytes(BODY, allowing, origin="e", now=DURING).signed_by is None


@pytest.mark.parametrize(
    ("now", "message"),
    [
        (datetime(2026, 5, 31, tzinfo=UTC), "not valid before 2026-06-01T08:00:00"),
        (datetime(2026, 6, 1, 10, 1, tzinfo=UTC), "expired at 2026-06-01T10:00:00"),
    ],
)
def test_validity_window(
    key: Ed25519PrivateKey, org: Organisation, now: datetime, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        examfile.load_bytes(examfile.sign(BODY, key), org, origin="e", now=now)


def test_resigning_replaces_the_old_signature(key: Ed25519PrivateKey, org: Organisation) -> None:
    twice = examfile.sign(examfile.sign(BODY, key), key)
    assert twice.count(b"lockdown-signature") == 1
    examfile.load_bytes(twice, org, origin="e", now=DURING)


ALLOW = Organisation(values={"config.allow_unsigned": True})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        (BODY[: len(BODY) // 2], "not valid TOML"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "not a UTF-8 text file|binary data"),
        (b"a = 1\n\x00", "binary data"),
        (b"x" * (examfile.MAX_CONFIG_BYTES + 1), "larger than 1024 KiB"),
        (b"format = 1\n[guards]\nclipboard = 3\n", "'guards.clipboard': expected one of"),
        (b"format = 1\n[guards]\nfly = true\n", "unknown option 'guards.fly'"),
        (b"format = 2\n", "'format = 1' missing or unsupported"),
        (b'[exam]\ntitle = "x"\n', "'format = 1' missing"),
        (b"format = 1\n[exam]\nvalid_until = 2026-01-01\n", "must be a date and time with a zone"),
        (b'format = 1\n[exam]\nroom = "B12"\n', "unknown field exam.room"),
        (b"format = 1\n[config]\nallow_unsigned = true\n", None),
    ],
)
def test_bad_files_give_one_clear_line(data: bytes, message: str | None) -> None:
    if message is None:
        config = examfile.load_bytes(data, ALLOW, origin="e")
        from lockdown.config.settings import layer

        with pytest.raises(ConfigError, match="only by the organisation"):
            layer(ALLOW, config.values)
        return
    with pytest.raises(ConfigError, match=message) as exc:
        examfile.load_bytes(data, ALLOW, origin="e")
    assert "\n" not in str(exc.value)


def test_malformed_signature_line(key: Ed25519PrivateKey, org: Organisation) -> None:
    with pytest.raises(ConfigError, match="signature line is malformed"):
        examfile.load_bytes(BODY + b"# lockdown-signature nonsense\n", org, origin="e", now=DURING)


def test_read_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        examfile.read_file(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="is a folder"):
        examfile.read_file(tmp_path)
    big = tmp_path / "big.seb"
    big.write_bytes(b"x" * 2049)
    with pytest.raises(ConfigError, match="larger than 2 KiB"):
        examfile.read_file(big, limit=2048)


@settings(max_examples=300)
@given(data=st.binary(max_size=600))
def test_fuzz_random_bytes_only_ever_config_error(data: bytes) -> None:
    try:
        examfile.load_bytes(data, ALLOW, origin="fuzz")
    except ConfigError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=300)
@given(
    cut=st.integers(min_value=0, max_value=len(BODY)), flip=st.integers(min_value=0, max_value=255)
)
def test_fuzz_mutated_valid_file(cut: int, flip: int) -> None:
    data = bytearray(BODY)
    if cut < len(data):
        data[cut] = flip
    try:
        examfile.load_bytes(bytes(data), ALLOW, origin="fuzz", now=DURING)
    except ConfigError as exc:
        assert "\n" not in str(exc)
