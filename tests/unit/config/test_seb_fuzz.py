"""Fuzzing the .seb reader and the plist parser: nothing but ConfigError ever escapes."""

from __future__ import annotations

import gzip
import plistlib
from datetime import datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lockdown.config import examkeys, seb
from lockdown.config.settings import ConfigError

DATA = Path(__file__).resolve().parents[2] / "data" / "seb"
GOOD_PLAIN = (DATA / "exam.plist.xml").read_bytes()
GOOD_PLND = (DATA / "exam-plnd.seb").read_bytes()
GOOD_PSWD = (DATA / "exam-password.seb").read_bytes()
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _read(data: bytes) -> None:
    try:
        cfg = seb.load_seb(data, origin="fuzz.seb", password=lambda _: "Prüfung-2026!")
    except ConfigError as exc:
        assert "\n" not in str(exc)
        assert str(exc).startswith("fuzz.seb")
    else:
        assert len(cfg.config_key) == 64


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes(data: bytes) -> None:
    _read(data)


@FUZZ
@given(st.sampled_from(seb.PREFIXES), st.binary(max_size=512), st.booleans())
def test_random_payload_behind_every_prefix(prefix: bytes, payload: bytes, zipped: bool) -> None:
    data = prefix + payload
    _read(gzip.compress(data) if zipped else data)


@FUZZ
@given(
    st.sampled_from([GOOD_PLAIN, GOOD_PLND, GOOD_PSWD, gzip.decompress(GOOD_PLND)]),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), min_size=1, max_size=4),
    st.integers(0, 10_000),
)
def test_mutated_and_truncated_files(good: bytes, flips: list[tuple[int, int]], cut: int) -> None:
    changed = bytearray(good)
    for index, mask in flips:
        changed[index % len(changed)] ^= mask
    _read(bytes(changed))
    _read(good[: cut % len(good)])


_FRAGMENTS = [
    "<dict>",
    "</dict>",
    "<array>",
    "</array>",
    "<key>k</key>",
    "<key>startURL</key>",
    "<key>clipboardPolicy</key>",
    "<key>URLFilterRules</key>",
    "<key>examKeySalt</key>",
    "<string>https://a.example/</string>",
    "<string>x</string>",
    "<integer>2</integer>",
    "<integer>-1</integer>",
    "<integer>x</integer>",
    "<real>1.5</real>",
    "<real>nan</real>",
    "<true/>",
    "<false/>",
    "<data>AP8=</data>",
    "<data>A</data>",
    "<date>2020-01-01T00:00:00Z</date>",
    "<date>1</date>",
    "<dict/>",
    "<array/>",
    "<key>originatorVersion</key>",
    "&amp;",
    "&bogus;",
    "<![CDATA[x]]>",
    "<!-- c -->",
    "<plist>",
    "</plist>",
    "<?xml version='1.0'?>",
]


@FUZZ
@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=40), st.text(max_size=20))
def test_plist_parser_on_plist_like_xml(parts: list[str], noise: str) -> None:
    xml = "<?xml version='1.0'?><plist><dict>" + "".join(parts) + noise + "</dict></plist>"
    try:
        plist = seb.parse_plist(xml.encode("utf-8", "surrogatepass"), origin="fuzz")
    except ConfigError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(plist, dict)
        examkeys.seb_json(plist)
    _read(xml.encode("utf-8", "surrogatepass"))


_plist_values = st.recursive(
    st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc", "Cn", "Co"]), max_size=20)
    | st.binary(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(min_size=1, max_size=8, alphabet="abcABC_1"), children, max_size=4
        )
    ),
    max_leaves=20,
)


@FUZZ
@given(
    st.dictionaries(st.text(min_size=1, max_size=8, alphabet="aAbBxX"), _plist_values, max_size=8)
)
def test_any_plist_we_write_reads_back_with_the_same_config_key(plist: dict[str, object]) -> None:
    xml = plistlib.dumps(plist, fmt=plistlib.FMT_XML)
    for data in (xml, seb.write_seb(xml)):
        cfg = seb.load_seb(data, origin="fuzz.seb", password=lambda _: None)
        assert cfg.config_key == examkeys.config_key(plist)
        assert cfg.values == {}
        assert set(cfg.ignored) == set(plist)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8, alphabet="aAbBxX"),
        _plist_values | st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
        max_size=8,
    )
)
def test_our_parser_reads_what_plistlib_writes_as_plistlib_does(plist: dict[str, object]) -> None:
    xml = plistlib.dumps(plist, fmt=plistlib.FMT_XML)
    assert seb.parse_plist(xml, origin="fuzz") == plistlib.loads(xml)
