"""Which key combinations the keyboard guard blocks, and how settings name them."""

from __future__ import annotations

import pytest

from lockdown.guards.keyboard import is_blocked, normalise, stroke_combo
from lockdown.platform.base import KeyStroke


@pytest.mark.parametrize(
    "combo",
    [
        "Alt+Tab",
        "Alt+Shift+Tab",
        "Meta",
        "Meta+D",
        "Ctrl+Meta",
        "Ctrl+Alt+T",
        "Ctrl+Esc",
        "Print",
        "Alt+Print",
        "Ctrl+Shift+Print",
        "Alt+F4",
        "Ctrl+Alt+F2",
        "Ctrl+Shift+Esc",
    ],
)
def test_app_switching_and_system_shortcuts_are_blocked(combo: str) -> None:
    assert is_blocked(combo)


@pytest.mark.parametrize(
    "combo", ["A", "Ctrl+C", "Ctrl+V", "Shift+Tab", "Tab", "Alt", "", "Ctrl+Alt+Q", "F5"]
)
def test_typing_and_editing_keys_pass(combo: str) -> None:
    assert not is_blocked(combo)


def test_the_allow_list_keeps_a_blocked_combination() -> None:
    assert not is_blocked("Meta", {"Meta"})
    assert is_blocked("Alt+Tab", {"Meta"})


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("super", "Meta"),
        ("alt + tab", "Alt+Tab"),
        ("shift+ctrl+esc", "Ctrl+Shift+Esc"),
        ("Insert", "Ins"),
        ("win+ctrl", "Ctrl+Meta"),
        ("CapsLock", "CapsLock"),
    ],
)
def test_settings_spellings_are_normalised(written: str, canonical: str) -> None:
    assert normalise(written) == canonical


def test_native_strokes_are_named_like_qt_combinations() -> None:
    assert stroke_combo(KeyStroke("Tab", frozenset({"Alt"}))) == "Alt+Tab"
    assert stroke_combo(KeyStroke("Meta", frozenset({"Meta", "Ctrl"}))) == "Ctrl+Meta"
    assert stroke_combo(KeyStroke("Alt", frozenset({"Alt"}))) == "Alt"
