"""The URL filter's Safe Exam Browser semantics, without Qt."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

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


def test_glob_host_is_matched_against_the_host_only() -> None:
    rule_ = compile_glob("*.wikipedia.org")
    assert rule_.matches("https://en.wikipedia.org/wiki/Exam")
    assert not rule_.matches("http://any-host/cheat?x=.wikipedia.org")
    assert not rule_.matches("http://any-host/.wikipedia.org")
    assert not rule_.matches("http://en.wikipedia.org.evil.com/")
    assert not rule_.matches("https://en.wikipedia.org:8443/")  # not the default port
    # user information never decides: the host is what the browser connects to
    assert rule_.matches("https://user@en.wikipedia.org/")
    assert not compile_glob("en.wikipedia.org").matches("https://en.wikipedia.org@evil.com/")


def test_glob_with_a_path_matches_the_path_and_its_query() -> None:
    rule_ = compile_glob("http://127.0.0.1:4000/allowed/*")
    assert rule_.matches("http://127.0.0.1:4000/allowed/page?x=1")
    assert not rule_.matches("http://127.0.0.1:4001/allowed/page")
    assert not rule_.matches("http://127.0.0.1:4000/other/allowed/")
    assert compile_glob("h.org:*/x").matches("http://h.org:8080/x")
    assert compile_glob("[::1]:8080").matches("http://[::1]:8080/")


def test_whole_url_globs_are_the_bypass_that_the_part_matching_closes() -> None:
    """The development control: the old whole-URL matching lets another host through."""
    rules = [rule("allow", "*.wikipedia.org")]
    assert UrlFilter(rules, whole_url_globs=True).allows("http://any-host/cheat?x=.wikipedia.org")
    assert not UrlFilter(rules).allows("http://any-host/cheat?x=.wikipedia.org")


@given(
    host=st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z]{2,5}){0,2}", fullmatch=True),
    path=st.text(alphabet=st.characters(codec="ascii", exclude_characters="#"), max_size=40),
)
def test_a_host_glob_never_matches_a_host_outside_it(host: str, path: str) -> None:
    url = f"http://{host}/{path.lstrip('/')}"
    if not host.endswith(".wikipedia.org"):
        assert not compile_glob("*.wikipedia.org").matches(url)
