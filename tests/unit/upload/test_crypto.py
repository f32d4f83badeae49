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


def test_recipient_pair_files_mode_and_bad_files(tmp_path: Path) -> None:
    private, public, text = crypto.generate_recipient(tmp_path / "it")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert public.read_text().strip() == text and text.startswith("x25519:")
    assert crypto.recipient_text(crypto.load_recipient(str(public))) == text
    assert crypto.recipient_text(crypto.load_recipient_private(private).public_key()) == text
    with pytest.raises(SpoolError, match="exists already"):
        crypto.generate_recipient(tmp_path / "it")
    private.write_text("lockdown-recipient-key-v1:abcd\n")
    with pytest.raises(SpoolError, match="not a recipient private key"):
        crypto.load_recipient_private(private)
    with pytest.raises(SpoolError, match="not found"):
        crypto.load_recipient_private(tmp_path / "missing.key")
    with pytest.raises(SpoolError, match="not a recipient public key"):
        crypto.parse_recipient("ed25519:" + "A" * 43 + "=")
    with pytest.raises(SpoolError, match="32 bytes"):
        crypto.check_key(b"short")


def test_a_wrapped_key_opens_only_for_its_recipient_and_label(tmp_path: Path) -> None:
    private, _, text = crypto.generate_recipient(tmp_path / "it")
    key = crypto.new_key()
    wrapped = crypto.wrap(key, crypto.parse_recipient(text), label="lockdown-spool/abc")
    assert key.hex() not in str(wrapped.to_json()) and wrapped.scheme == crypto.WRAP_SCHEME
    owner = crypto.load_recipient_private(private)
    assert crypto.unwrap(wrapped, owner, label="lockdown-spool/abc") == key
    with pytest.raises(SpoolError, match="tampered"):
        crypto.unwrap(wrapped, owner, label="lockdown-spool/other")  # bound to its spool
    other, _, _ = crypto.generate_recipient(tmp_path / "other")
    with pytest.raises(SpoolError, match="not the recording's recipient"):
        crypto.unwrap(wrapped, crypto.load_recipient_private(other), label="lockdown-spool/abc")
    flipped = crypto.KeyWrapping.from_json(
        {**wrapped.to_json(), "wrapped_key": wrapped.wrapped_key[:-4] + "AAA="}  # type: ignore[index]
    )
    with pytest.raises(SpoolError, match="tampered"):
        crypto.unwrap(flipped, owner, label="lockdown-spool/abc")


def test_key_id_is_a_short_fingerprint_not_the_key() -> None:
    key = crypto.new_key()
    assert len(crypto.key_id(key)) == 16
    assert crypto.key_id(key) not in key.hex()
    assert crypto.key_id(key) == crypto.key_id(bytes(key))
