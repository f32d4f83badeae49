"""The URL filter's Safe Exam Browser semantics, without Qt."""

from __future__ import annotations

import pytest

from lockdown.ui.urlfilter import UrlFilter, compile_glob, origin

START = "https://exam.example.org/start"


def rule(
    action: str, expression: str, kind: str = "glob", active: bool = True
) -> dict[str, object]:
    return {"action": action, "expression": expression, "kind": kind, "active": active}


def test_start_origin_is_allowed_and_everything_else_blocked() -> None:
    f = UrlFilter([], start_url=START)
    assert f.allows("https://exam.example.org/q/2?x=1#top")
    assert not f.allows("http://exam.example.org/q/2")  # other scheme, other origin
    assert not f.allows("https://exam.example.org:8443/")
    assert not f.allows("https://evil.example.org/")
    assert f.decide("https://evil.example.org/").reason == "no allow rule"


def test_block_rules_win_over_allow_rules_and_the_start_origin() -> None:
    f = UrlFilter(
        [rule("allow", "*.example.org/*"), rule("block", "exam.example.org/admin*")],
        start_url=START,
    )
    assert f.allows("https://cdn.example.org/lib.js")
    decision = f.decide("https://exam.example.org/admin/users")
    assert (decision.allowed, decision.rule) == (False, "exam.example.org/admin*")


def test_start_origin_can_be_switched_off() -> None:
    assert not UrlFilter([], start_url=START, allow_start_origin=False).allows(START)


def test_glob_without_path_matches_the_whole_host_and_any_scheme() -> None:
    pattern = compile_glob("cdn.example.org")
    assert pattern.fullmatch("https://cdn.example.org")
    assert pattern.fullmatch("http://cdn.example.org/a/b?c=d")
    assert not pattern.fullmatch("https://cdn.example.org.evil.com/")
    assert not pattern.fullmatch("https://evil.com/cdn.example.org")


def test_glob_question_mark_is_one_character() -> None:
    assert compile_glob("https://a.org/q?").fullmatch("https://a.org/q1")
    assert not compile_glob("https://a.org/q?").fullmatch("https://a.org/q12")


def test_regex_rules_search_like_safe_exam_browser() -> None:
    f = UrlFilter([rule("allow", r"^https://docs\.example\.org/", kind="regex")], start_url=START)
    assert f.allows("https://docs.example.org/page")
    assert not f.allows("https://evil.org/?https://docs.example.org/")


def test_inactive_rules_are_ignored() -> None:
    f = UrlFilter([rule("allow", "evil.org", active=False)], start_url=START)
    assert not f.allows("https://evil.org/")


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "data:text/html,x",
        "javascript:alert(1)",
        "blob:https://exam.example.org/1",
    ],
)
def test_special_schemes_are_blocked_unless_allowed(url: str) -> None:
    assert not UrlFilter([], start_url=START).allows(url)
    scheme = url.split(":", maxsplit=1)[0]
    assert UrlFilter([rule("allow", f"{scheme}:*")], start_url=START).allows(url)


def test_blocked_schemes_lists_those_without_an_allow_rule() -> None:
    f = UrlFilter([rule("allow", "blob:*")], start_url=START)
    assert f.blocked_schemes() == ("file", "data", "javascript")


def test_empty_frames_are_always_allowed_and_filter_off_allows_all() -> None:
    assert UrlFilter([], start_url=START).allows("about:blank")
    assert UrlFilter([], start_url=START, enabled=False).allows("https://evil.org/")


def test_origin() -> None:
    assert origin("HTTPS://Exam.Example.org:443/x") == "https://exam.example.org"
    assert origin("http://127.0.0.1:8080/x") == "http://127.0.0.1:8080"
    assert origin("data:text/html,x") == ""
