"""What ``lockdown open TARGET`` turns each form of target into (no network involved)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockdown.config.settings import Organisation
from lockdown.launch import LINK_SCHEMES, LOOPBACK, LaunchError, Target, resolve


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (
            "https://exams.example.org/a/exam.toml",
            Target("url", "https://exams.example.org/a/exam.toml", "lockdown"),
        ),
        (
            "https://exams.example.org/exam.toml#part",
            Target("url", "https://exams.example.org/exam.toml", "lockdown"),
        ),
        (
            "https://exams.example.org/e.seb?k=1",
            Target("url", "https://exams.example.org/e.seb?k=1", "seb"),
        ),
        (
            "https://exams.example.org/e.seb",
            Target("url", "https://exams.example.org/e.seb", "seb"),
        ),
        (
            "http://127.0.0.1:8080/exam.toml",
            Target("url", "http://127.0.0.1:8080/exam.toml", "lockdown"),
        ),
        ("http://localhost/exam.toml", Target("url", "http://localhost/exam.toml", "lockdown")),
        (
            "lockdown://127.0.0.1:8080/a/exam.toml?id=7",
            Target("url", "http://127.0.0.1:8080/a/exam.toml?id=7", "lockdown"),
        ),
        (
            "lockdowns://exams.example.org/a/exam.toml#x",
            Target("url", "https://exams.example.org/a/exam.toml", "lockdown"),
        ),
        (
            "LOCKDOWNS://exams.example.org/exam.toml",
            Target("url", "https://exams.example.org/exam.toml", "lockdown"),
        ),
        ("seb://exams.example.org/e.seb", Target("url", "http://exams.example.org/e.seb", "seb")),
        (
            "sebs://exams.example.org/quiz/start?id=3",
            Target("url", "https://exams.example.org/quiz/start?id=3", "seb"),
        ),
        ("exam.toml", Target("file", "exam.toml", None)),
        (
            "/home/candidate/Downloads/Exam.SEB",
            Target("file", "/home/candidate/Downloads/Exam.SEB", "seb"),
        ),
    ],
)
def test_targets_resolve_to_a_file_or_a_download(target: str, expected: Target) -> None:
    assert resolve(target) == expected


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("http://exams.example.org/exam.toml", "cannot open http:// links"),
        ("ftp://exams.example.org/exam.toml", "cannot open ftp:// links"),
        ("file:///tmp/exam.toml", "cannot open file:// links"),
        ("lockdown:///exam.toml", "the link names no server"),
        ("sebs://", "the link names no server"),
        ("lockdown://exams.example.org/exam.toml", "for this computer only"),
        ("lockdown://127.0.0.1.example.org/exam.toml", "for this computer only"),
    ],
)
def test_other_targets_are_refused_with_one_line(target: str, message: str) -> None:
    with pytest.raises(LaunchError) as caught:
        resolve(target)
    text = str(caught.value)
    assert message in text and "\n" not in text
    assert text.startswith(target)


def test_a_lockdown_link_to_a_host_the_organisation_lists_is_marked_for_the_journal() -> None:
    org = Organisation(values={"config.plain_http_hosts": ("exams.school.lan",)})
    target = resolve("lockdown://EXAMS.school.lan/e.toml?x=1", org)
    assert target == Target(
        "url", "http://EXAMS.school.lan/e.toml?x=1", "lockdown", "exams.school.lan"
    )
    with pytest.raises(LaunchError, match="for this computer only"):
        resolve("lockdown://other.school.lan/e.toml", org)


_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


@given(
    scheme=st.sampled_from([*LINK_SCHEMES, "https", "http", "file", "javascript", "LockDown", ""]),
    host=_TEXT,
    rest=_TEXT,
)
def test_any_link_resolves_to_https_or_loopback_http_or_one_line_refusal(
    scheme: str, host: str, rest: str
) -> None:
    from urllib.parse import urlsplit

    target = f"{scheme}://{host}/{rest}" if scheme else f"{host}/{rest}"
    try:
        resolved = resolve(target)
    except LaunchError as exc:
        assert "\n" not in str(exc)
        return
    if resolved.source == "file":
        assert "://" not in target or target.split(":", 1)[0].lower() not in LINK_SCHEMES
        return
    parts = urlsplit(resolved.location)
    assert parts.scheme in ("https", "http")
    if parts.scheme == "http" and scheme.lower() != "seb":  # seb:// is http, as SEB's
        host = parts.hostname or ""
        assert host in LOOPBACK or ipaddress.ip_address(host).is_loopback
    assert "#" not in resolved.location
    if scheme.lower() in ("seb", "sebs"):
        assert resolved.kind == "seb"
    if scheme.lower() in ("lockdown", "lockdowns"):
        assert resolved.kind == "lockdown"
