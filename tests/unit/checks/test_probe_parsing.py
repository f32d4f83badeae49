"""What the service answers is parsed without ever raising (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from lockdown.session import probe

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


@given(st.text(max_size=80))
def test_any_date_header_parses_to_utc_or_none(value: str) -> None:
    parsed = probe.parse_date(value)
    assert parsed is None or parsed.tzinfo is not None


def test_an_http_date_parses() -> None:
    assert probe.parse_date("Tue, 01 Dec 2026 13:38:25 GMT") == datetime(
        2026, 12, 1, 13, 38, 25, tzinfo=UTC
    )


@given(st.integers(100, 599), st.dictionaries(st.text(max_size=10), JSONISH, max_size=4))
def test_any_refusal_becomes_a_code_and_one_line(status: int, body: dict[str, object]) -> None:
    code, reason = probe._service_error(status, body)
    assert code and reason.startswith(f"the service answered {status}")
    assert reason.isprintable() and len(reason) < 320


@given(st.text(max_size=20) | st.none())
def test_retry_after_is_a_sane_number_or_none(value: str | None) -> None:
    seconds = probe._retry_after(value)
    assert seconds is None or 0 <= seconds < 86400
