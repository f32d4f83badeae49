"""Quit rules: Safe Exam Browser password hash, quit URL matching, growing delays."""

from __future__ import annotations

from lockdown.ui.quitrules import QuitRules, delay_after, password_hash

SEB_VECTOR = "4adfa806cb610693a6200e4cdbdafeaf352876a35f964a781d691457df9cd378"


def test_password_hash_matches_safe_exam_browser() -> None:
    assert password_hash("blabbedyblubbedy") == SEB_VECTOR


def test_password_check_is_case_insensitive_on_the_hash() -> None:
    rules = QuitRules(password_hash=SEB_VECTOR.upper())
    assert rules.check_password("blabbedyblubbedy")
    assert not rules.check_password("blabbedyblubbedY")
    assert QuitRules().check_password("anything")


def test_quit_url_ignores_fragment_and_trailing_slash() -> None:
    rules = QuitRules(quit_url="https://exam.example.org/done/")
    assert rules.is_quit_url("https://exam.example.org/done#end")
    assert not rules.is_quit_url("https://exam.example.org/done/more")
    assert not QuitRules().is_quit_url("https://exam.example.org/")


def test_delay_grows_and_is_capped() -> None:
    assert [delay_after(n) for n in range(0, 5)] == [0.0, 1.0, 2.0, 4.0, 8.0]
    assert delay_after(50) == 30.0
