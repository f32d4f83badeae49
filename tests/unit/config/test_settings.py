"""Option types, layered settings and the organisation file."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockdown.config.settings import (
    ConfigError,
    Organisation,
    Settings,
    UndeclaredOption,
    convert,
    flatten,
    layer,
    load_organisation,
    parse_organisation,
)
from lockdown.config.types import Duration, Int, InvalidValue, Url


def test_defaults_cover_every_option_and_come_from_defaults() -> None:
    settings = Settings.defaults()
    assert settings["guards.clipboard"] == "isolated"
    assert settings.source("guards.clipboard") == "default"
    assert settings.changed() == {}


def test_undeclared_option_cannot_be_read() -> None:
    with pytest.raises(UndeclaredOption, match="not declared"):
        Settings.defaults()["guards.nonexistent"]


def test_settings_are_frozen() -> None:
    settings = Settings.defaults()
    with pytest.raises(AttributeError):
        settings.ignored = ()
    with pytest.raises(TypeError):
        settings["guards.focus"] = False  # type: ignore[index]
    rules = layer(
        Organisation(),
        {
            "browser.url_rules": convert(
                "browser.url_rules", [{"action": "allow", "expression": "*"}], origin="t"
            )
        },
    )["browser.url_rules"]
    with pytest.raises(TypeError):
        rules[0]["action"] = "block"


def test_error_names_key_value_and_expectation() -> None:
    with pytest.raises(ConfigError) as exc:
        convert("guards.max_displays", 99, origin="exam.toml")
    assert (
        str(exc.value)
        == "exam.toml: option 'guards.max_displays': expected an integer from 1 to 16, got 99"
    )
    with pytest.raises(
        ConfigError,
        match='\'guards.clipboard\': expected one of "allow", "block", "isolated", got \'copy\'',
    ):
        convert("guards.clipboard", "copy", origin="x")
    with pytest.raises(ConfigError, match="unknown option 'guards.clipbord'"):
        convert("guards.clipbord", "block", origin="x")


def test_flatten_accepts_nested_tables_and_refuses_unknown_keys() -> None:
    values = flatten(
        {"guards": {"clipboard": "block"}, "kiosk": {"toolbar": {"clock": False}}}, origin="o"
    )
    assert values == {"guards.clipboard": "block", "kiosk.toolbar.clock": False}
    with pytest.raises(ConfigError, match="unknown option 'guards.colour'"):
        flatten({"guards": {"colour": "red"}}, origin="o")
    with pytest.raises(ConfigError, match="unknown option 'nonsense'"):
        flatten({"nonsense": {"a": 1}}, origin="o")


def test_layers_exam_over_organisation_over_defaults() -> None:
    org = Organisation(values={"guards.clipboard": "block", "guards.focus": False})
    settings = layer(org, {"guards.clipboard": "allow"})
    assert settings["guards.clipboard"] == "allow"
    assert settings.source("guards.clipboard") == "exam"
    assert settings["guards.focus"] is False
    assert settings.source("guards.focus") == "organisation"


def test_locked_option_keeps_the_organisation_value() -> None:
    org = Organisation(values={"guards.clipboard": "block"}, locked=frozenset({"guards.clipboard"}))
    settings = layer(org, {"guards.clipboard": "allow"})
    assert settings["guards.clipboard"] == "block"
    assert settings.ignored == ("guards.clipboard",)


def test_exam_cannot_set_organisation_only_option() -> None:
    with pytest.raises(ConfigError, match="only by the organisation"):
        layer(Organisation(), {"config.allow_unsigned": True})


def test_organisation_file_parses_settings_locks_and_keys(tmp_path: Path) -> None:
    path = tmp_path / "organisation.toml"
    path.write_text(
        'locked = ["guards.virtual_machine"]\n'
        "[settings.config]\nallow_unsigned = true\n"
        'trusted_keys = ["ed25519:' + "A" * 43 + '="]\n'
        '[settings.guards]\nvirtual_machine = "warn"\n'
    )
    org = load_organisation(path)
    assert org.allow_unsigned is True
    assert org.trusted_keys == ("ed25519:" + "A" * 43 + "=",)
    assert org.locked == {"guards.virtual_machine"}
    assert org.path == path


def test_missing_default_organisation_file_means_defaults(tmp_path: Path) -> None:
    assert load_organisation(tmp_path / "none.toml") == Organisation()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[settings\n", "not valid TOML"),
        (b"\xff\xfe\x00", "not a UTF-8 text file"),
        (b'colour = "red"\n', "unknown top-level key 'colour'"),
        (b'locked = ["nope.nope"]\n', "'locked' names unknown option 'nope.nope'"),
        (b"[settings]\nguards = 3\n", "unknown option 'guards'"),
        (b"x" * 300_000, "larger than 256 KiB"),
    ],
)
def test_bad_organisation_file_gives_one_line(content: bytes, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as exc:
        parse_organisation(content, origin="org.toml")
    assert "\n" not in str(exc.value)


def test_missing_required_or_unreadable_organisation_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="organisation file not found"):
        load_organisation(tmp_path / "none.toml", required=True)
    with pytest.raises(ConfigError, match="is a folder"):
        load_organisation(tmp_path)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (90, 90.0),
        (1.5, 1.5),
        ("90s", 90.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("250ms", 0.25),
        ("2m30s", 150.0),
    ],
)
def test_duration_parses_numbers_and_text(value: object, seconds: float) -> None:
    assert Duration().convert(value) == seconds


@pytest.mark.parametrize("value", ["", "5x", "m", True, -1, "1h1h", float("nan")])
def test_duration_refuses_nonsense(value: object) -> None:
    with pytest.raises(InvalidValue):
        Duration().convert(value)


def test_url_type_requires_scheme_and_host() -> None:
    assert Url().convert("https://exam.example.org/a") == "https://exam.example.org/a"
    assert Url().convert("") == ""
    for bad in ("ftp://x", "https://", "exam.example.org", "https://a b"):
        with pytest.raises(InvalidValue):
            Url().convert(bad)


def test_int_refuses_bool() -> None:
    with pytest.raises(InvalidValue):
        Int(0, 5).convert(True)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)


@given(
    key=st.sampled_from(sorted(__import__("lockdown.config.settings", fromlist=["SCHEMA"]).SCHEMA)),
    value=json_values,
)
def test_convert_never_raises_anything_but_config_error(key: str, value: object) -> None:
    try:
        convert(key, value, origin="fuzz")
    except ConfigError as exc:
        assert "\n" not in str(exc)


@given(data=st.binary(max_size=400))
def test_organisation_parser_fuzz(data: bytes) -> None:
    try:
        parse_organisation(data, origin="fuzz")
    except ConfigError:
        pass
