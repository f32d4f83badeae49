"""The shared token format: signed, typed, expiring; anything else is refused with a reason."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from lockdown.config.settings import convert
from lockdown.session import tokens
from lockdown.session.tokens import Problem, TokenError, TokenType

KEY = Ed25519PrivateKey.generate()
NOW = 1_780_000_000.0


def _launch(**kwargs: float) -> str:
    claims = {"sub": "u1", "grp": "A", "name": "Ada", "exam": "physics"}
    return tokens.issue(KEY, TokenType.LAUNCH, claims, lifetime_s=600, now=NOW, **kwargs)


def test_a_token_round_trips_with_its_claims() -> None:
    text = _launch()
    token = tokens.verify(text, KEY.public_key(), types={TokenType.LAUNCH}, now=NOW + 1)
    assert token.typ is TokenType.LAUNCH
    assert (token.iat, token.exp) == (int(NOW), int(NOW) + 600)
    assert token.claim("name") == "Ada" and token.claim("exam") == "physics"
    assert token.text == text and "=" not in text and text.count(".") == 1


def test_the_wire_form_is_payload_dot_signature_in_unpadded_base64url() -> None:
    body, sig = _launch().split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    assert payload["v"] == 1 and payload["typ"] == "launch" and payload["jti"]
    raw_sig = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    KEY.public_key().verify(raw_sig, body.encode())  # raises when not so


def test_an_expired_token_is_refused() -> None:
    with pytest.raises(TokenError) as err:
        tokens.verify(_launch(), KEY.public_key(), types={TokenType.LAUNCH}, now=NOW + 600)
    assert err.value.problem is Problem.EXPIRED


def test_a_token_from_the_future_is_refused_beyond_the_leeway() -> None:
    pub = KEY.public_key()
    tokens.verify(_launch(), pub, types={TokenType.LAUNCH}, now=NOW - tokens.CLOCK_LEEWAY_S)
    with pytest.raises(TokenError) as err:
        tokens.verify(_launch(), pub, types={TokenType.LAUNCH}, now=NOW - 3600)
    assert err.value.problem is Problem.NOT_YET_VALID


def test_a_client_with_a_wrong_clock_can_still_read_a_token() -> None:
    token = tokens.verify(
        _launch(), KEY.public_key(), types={TokenType.LAUNCH}, now=NOW + 86400, check_time=False
    )
    assert token.claim("sub") == "u1"


def test_a_token_signed_by_another_key_is_forged() -> None:
    other = Ed25519PrivateKey.generate()
    with pytest.raises(TokenError) as err:
        tokens.verify(_launch(), other.public_key(), types={TokenType.LAUNCH}, now=NOW)
    assert err.value.problem is Problem.FORGED


def test_an_edited_payload_is_forged() -> None:
    body, sig = _launch().split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["exp"] += 10**6
    edited = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    with pytest.raises(TokenError) as err:
        tokens.verify(edited + "." + sig, KEY.public_key(), types={TokenType.LAUNCH}, now=NOW)
    assert err.value.problem is Problem.FORGED


def test_a_token_of_another_type_is_refused() -> None:
    with pytest.raises(TokenError) as err:
        tokens.verify(_launch(), KEY.public_key(), types={TokenType.SESSION}, now=NOW)
    assert err.value.problem is Problem.WRONG_TYPE


def test_reserved_claims_cannot_be_overridden() -> None:
    with pytest.raises(ValueError, match="reserved"):
        tokens.issue(KEY, TokenType.PROBE, {"exp": 1}, lifetime_s=10)


def test_public_key_text_round_trips_and_fits_the_schema() -> None:
    text = tokens.public_text(KEY.public_key())
    assert tokens.parse_public(text) == KEY.public_key()
    assert convert("service.token_key", text, origin="t") == text
    launch = _launch()
    assert convert("service.launch_token", launch, origin="t") == launch
    with pytest.raises(ValueError):
        tokens.parse_public("ed25519:AAAA")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.hex()))
def test_garbage_is_refused_as_malformed_or_forged(text: str) -> None:
    with pytest.raises(TokenError) as err:
        tokens.verify(text, KEY.public_key(), types=set(TokenType), now=NOW)
    assert err.value.problem in (Problem.MALFORMED, Problem.FORGED)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=400))
def test_a_signed_garbage_payload_is_refused_as_malformed(body: bytes) -> None:
    head = base64.urlsafe_b64encode(body).rstrip(b"=").decode()
    sig = base64.urlsafe_b64encode(KEY.sign(head.encode())).rstrip(b"=").decode()
    try:
        tokens.verify(head + "." + sig, KEY.public_key(), types=set(TokenType), now=NOW)
    except TokenError as exc:
        assert exc.problem in (Problem.MALFORMED, Problem.WRONG_TYPE, Problem.EXPIRED)
