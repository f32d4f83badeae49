"""Session keys: random, stored 0600, checked, and sealing uses a fresh nonce every time."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from lockdown.upload import crypto
from lockdown.upload.base import SpoolError


def test_keys_are_random_256_bit() -> None:
    keys = {crypto.new_key() for _ in range(20)}
    assert len(keys) == 20
    assert all(len(k) == 32 for k in keys)


def test_each_seal_uses_a_fresh_nonce_and_binds_the_associated_data() -> None:
    key = crypto.new_key()
    a = crypto.seal(key, b"media", b"camera/1")
    b = crypto.seal(key, b"media", b"camera/1")
    assert a[: crypto.NONCE_BYTES] != b[: crypto.NONCE_BYTES]
    assert crypto.unseal(key, a, b"camera/1") == b"media"
    with pytest.raises(SpoolError, match="authentication tag"):
        crypto.unseal(key, a, b"camera/2")
    with pytest.raises(SpoolError, match="authentication tag"):
        crypto.unseal(crypto.new_key(), a, b"camera/1")
    with pytest.raises(SpoolError, match="cut short"):
        crypto.unseal(key, a[:20], b"camera/1")


def test_key_file_round_trip_mode_and_bad_files(tmp_path: Path) -> None:
    key = crypto.new_key()
    path = tmp_path / "keys" / "s.key"
    crypto.write_key_file(path, key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert crypto.read_key_file(path) == key
    path.write_text("lockdown-spool-key-v1:abcd\n")
    with pytest.raises(SpoolError, match="not a spool key file"):
        crypto.read_key_file(path)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(SpoolError, match="not a key file"):
        crypto.read_key_file(path)
    with pytest.raises(SpoolError, match="not found"):
        crypto.read_key_file(tmp_path / "missing.key")
    with pytest.raises(SpoolError, match="32 bytes"):
        crypto.check_key(b"short")


def test_key_id_is_a_short_fingerprint_not_the_key() -> None:
    key = crypto.new_key()
    assert len(crypto.key_id(key)) == 16
    assert crypto.key_id(key) not in key.hex()
    assert crypto.key_id(key) == crypto.key_id(bytes(key))
