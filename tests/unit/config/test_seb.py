"""Safe Exam Browser .seb files: containers, password prompt, plist types, mapping onto our options."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import logging
import plistlib
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from lockdown.config import seb
from lockdown.config.settings import ConfigError, Organisation, layer

DATA = Path(__file__).resolve().parents[2] / "data" / "seb"
PASSWORD = "Prüfung-2026!"
VECTOR_CK = "adac1a5a0017f452d8fac260edef4b3b66c6e969c61b9109acff453bdfe2ff96"


def no_password(attempt: int) -> str | None:
    raise AssertionError(f"asked for a password (try {attempt}) on an unencrypted file")


def passwords(*answers: str | None) -> tuple[Callable[[int], str | None], list[int]]:
    """A password callback that answers in order and records the try numbers it was given."""
    asked: list[int] = []

    def answer(attempt: int) -> str | None:
        asked.append(attempt)
        return answers[len(asked) - 1]

    return answer, asked


def plist_xml(settings: dict[str, object]) -> bytes:
    return plistlib.dumps(settings, fmt=plistlib.FMT_XML)


def load(data: bytes, password: Callable[[int], str | None] = no_password) -> seb.SebConfig:
    return seb.load_seb(data, origin="exam.seb", password=password)


def refused(data: bytes, password: Callable[[int], str | None] = no_password) -> str:
    with pytest.raises(ConfigError) as exc:
        load(data, password)
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith("exam.seb: ")
    assert exc.value.exit_code == 2
    return message


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def config_log() -> Iterator[Records]:
    logger = logging.getLogger("lockdown.config")
    handler, level = Records(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


# -- mapping ------------------------------------------------------------------------------


def test_own_vector_maps_every_supported_key_onto_our_options() -> None:
    cfg = load((DATA / "exam.plist.xml").read_bytes())
    assert dict(cfg.values) == {
        "browser.start_url": "https://exam.example.org/quiz/start?id=7",
        "quit.url": "https://exam.example.org/quiz/done",
        "quit.password_hash": hashlib.sha256(b"blabbedyblubbedy").hexdigest(),
        "quit.allow": False,
        "browser.url_filter": True,
        "browser.url_rules": (
            {"active": True, "kind": "glob", "expression": "exam.example.org", "action": "allow"},
            {
                "active": True,
                "kind": "regex",
                "expression": r"^https://cheat\.example\.org/.*$",
                "action": "block",
            },
        ),
        "guards.clipboard": "block",
        "guards.screenshots": True,
        "guards.virtual_machine": "deny",
        "guards.max_displays": 2,
        "guards.prohibited_apps_extra": ("obs",),
        "guards.permitted_apps": ("calculator",),
        "browser.allow_reload": False,
        "browser.new_window_policy": "block",
        "browser.send_browser_exam_key": True,
        "browser.exam_key_salt": bytes(range(32)).hex(),
        "proctoring.screen": True,
    }
    assert cfg.config_key == VECTOR_CK


def test_quit_password_hash_is_the_lower_case_sha256_of_the_password() -> None:
    # README example: blabbedyblubbedy -> 4adfa806…; the vector writes it in upper case.
    cfg = load((DATA / "exam.plist.xml").read_bytes())
    assert (
        cfg.values["quit.password_hash"]
        == "4adfa806cb610693a6200e4cdbdafeaf352876a35f964a781d691457df9cd378"
    )


def test_mapped_values_layer_as_an_exam_configuration() -> None:
    cfg = load((DATA / "exam.plist.xml").read_bytes())
    settings = layer(Organisation(), cfg.values)
    assert settings["guards.clipboard"] == "block"
    assert settings.source("browser.start_url") == "exam"
    assert settings["kiosk.toolbar.clock"] is True


def test_unmapped_keys_are_listed_and_logged(config_log: Records) -> None:
    cfg = load((DATA / "exam.plist.xml").read_bytes())
    assert list(cfg.ignored) == sorted(cfg.ignored, key=str.lower)
    assert set(cfg.ignored) == {
        "allowWLAN",
        "allowWlan",
        "alpha",
        "browserMessagingSocket",
        "embeddedCertificates",
        "emptyOptions",
        "onlyOriginator",
        "originatorVersion",
        "Zeta",
    }
    logged = "\n".join(config_log.messages)
    for key in cfg.ignored:
        assert key in logged
    assert "17 settings mapped" in logged


@pytest.mark.parametrize(
    ("seb_key", "value", "option", "expected"),
    [
        ("clipboardPolicy", 0, "guards.clipboard", "allow"),
        ("clipboardPolicy", 2, "guards.clipboard", "isolated"),
        ("enablePrintScreen", True, "guards.screenshots", False),
        ("allowVirtualMachine", True, "guards.virtual_machine", "allow"),
        ("allowScreenSharing", True, "guards.remote_session", "allow"),
        ("allowScreenSharing", False, "guards.remote_session", "deny"),
        ("allowedDisplaysMaxNumber", 0, "guards.max_displays", 1),
        ("allowedDisplaysMaxNumber", 99, "guards.max_displays", 16),
        ("newBrowserWindowByLinkPolicy", 1, "browser.new_window_policy", "same_window"),
        ("newBrowserWindowByLinkPolicy", 2, "browser.new_window_policy", "same_window"),
        ("examKeySalt", b"", "browser.exam_key_salt", ""),
        ("hashedQuitPassword", "", "quit.password_hash", ""),
    ],
)
def test_each_mapping(seb_key: str, value: object, option: str, expected: object) -> None:
    cfg = load(plist_xml({seb_key: value}))
    assert cfg.values == {option: expected}
    assert cfg.ignored == ()


def test_url_rule_defaults_inactive_rules_and_processes() -> None:
    cfg = load(
        plist_xml(
            {
                "URLFilterRules": [{"expression": "a.example"}, {"active": False, "action": 1}],
                "prohibitedProcesses": [
                    {"executable": "obs"},
                    {"executable": "obs", "os": 0},
                    {"executable": " "},
                    {"active": False, "executable": "zoom"},
                ],
            }
        )
    )
    assert cfg.values["browser.url_rules"] == (
        {"active": True, "kind": "glob", "expression": "a.example", "action": "block"},
        {"active": False, "kind": "glob", "expression": "", "action": "allow"},
    )
    assert cfg.values["guards.prohibited_apps_extra"] == ("obs",)


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"allowQuit": "yes"}, "'allowQuit': expected true or false"),
        ({"clipboardPolicy": 7}, "'clipboardPolicy': expected one of [0, 1, 2], got 7"),
        ({"clipboardPolicy": True}, "'clipboardPolicy': expected an integer"),
        (
            {"startURL": "ftp://exam.example.org/"},
            "'startURL' gives option 'browser.start_url': expected a http",
        ),
        ({"hashedQuitPassword": "abc"}, "option 'quit.password_hash'"),
        ({"examKeySalt": "00ff"}, "'examKeySalt': expected data"),
        ({"URLFilterRules": [{"action": 2}]}, "rule 1: action: expected 0 (block) or 1 (allow)"),
        ({"URLFilterRules": ["x"]}, "rule 1: expected a dictionary"),
        ({"URLFilterRules": {"a": 1}}, "expected an array of rules"),
        ({"permittedProcesses": [{"executable": 3}]}, "process 1: expected a string"),
        ({"prohibitedProcesses": "obs"}, "expected an array of processes"),
    ],
)
def test_wrong_typed_seb_value_names_the_key(settings: dict[str, object], fragment: str) -> None:
    assert fragment in refused(plist_xml(settings))


# -- the plist ----------------------------------------------------------------------------


def test_plist_keeps_every_seb_type() -> None:
    xml = b"""<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict>
<key>d</key><date>2024-02-29T23:59:01Z</date>
<key>r</key><real>-0.25</real>
<key>b</key><data>AP8=</data>
<key>i</key><integer>-42</integer>
<key>t</key><true/><key>f</key><false/>
<key>s</key><string>&lt;&amp;&gt;</string>
<key>a</key><array><dict><key>x</key><integer>1</integer></dict><array/></array>
</dict></plist>"""
    cfg = load(xml)
    assert cfg.plist["d"] == datetime(2024, 2, 29, 23, 59, 1)
    assert cfg.plist["r"] == -0.25
    assert cfg.plist["b"] == b"\x00\xff"
    assert cfg.plist["i"] == -42
    assert cfg.plist["t"] is True and cfg.plist["f"] is False
    assert cfg.plist["s"] == "<&>"
    assert cfg.plist["a"] == ({"x": 1}, ())


def test_plist_is_frozen() -> None:
    cfg = load(plist_xml({"a": [1], "d": {"x": 1}}))
    with pytest.raises(TypeError):
        cfg.plist["a"] = 2  # type: ignore[index]
    with pytest.raises(TypeError):
        cfg.plist["d"]["x"] = 2
    assert isinstance(cfg.plist["a"], tuple)


# -- containers ---------------------------------------------------------------------------


def test_every_container_of_the_vector_gives_the_same_config_key() -> None:
    xml = (DATA / "exam.plist.xml").read_bytes()
    plain = [
        xml,
        b"\xef\xbb\xbf" + xml,
        b"\n  " + xml,
        gzip.compress(xml),
        (DATA / "exam-plnd.seb").read_bytes(),
        seb.write_seb(xml),
        gzip.compress(b"plnd" + xml),  # plnd with its inner XML not gzipped
        b"plnd" + gzip.compress(xml),  # no outer gzip
    ]
    for data in plain:
        assert load(data).config_key == VECTOR_CK
    answer, asked = passwords(PASSWORD)
    assert load((DATA / "exam-password.seb").read_bytes(), answer).config_key == VECTOR_CK
    assert asked == [1]


def test_pswd_round_trip_from_our_writer() -> None:
    xml = plist_xml({"startURL": "https://exam.example.org/", "originatorVersion": "x"})
    data = seb.write_seb(xml, password="s3cret ✓")
    answer, asked = passwords("s3cret ✓")
    cfg = load(data, answer)
    assert cfg.values == {"browser.start_url": "https://exam.example.org/"}
    assert asked == [1]
    assert gzip.decompress(data)[:4] == b"pswd"


def test_pswd_vector_decrypts_by_the_documented_format_alone() -> None:
    """Our writer follows the RNCryptor v3 layout, checked here without our reader."""
    blob = gzip.decompress((DATA / "exam-password.seb").read_bytes())
    assert blob[:4] == b"pswd"
    blob = blob[4:]
    assert blob[:2] == b"\x03\x01"
    enc_salt, hmac_salt, iv = blob[2:10], blob[10:18], blob[18:34]
    body, tag = blob[:-32], blob[-32:]
    secret = PASSWORD.encode()
    hmac_key = hashlib.pbkdf2_hmac("sha1", secret, hmac_salt, 10_000, 32)
    assert hmac.new(hmac_key, body, hashlib.sha256).digest() == tag
    enc_key = hashlib.pbkdf2_hmac("sha1", secret, enc_salt, 10_000, 32)
    decryptor = Cipher(algorithms.AES(enc_key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(blob[34:-32]) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    plain = unpadder.update(padded) + unpadder.finalize()
    assert gzip.decompress(plain) == (DATA / "exam.plist.xml").read_bytes()


def test_rncryptor_v2_blobs_are_read() -> None:
    xml = plist_xml({"allowQuit": False})
    blob = bytearray(gzip.decompress(seb.write_seb(xml, password="pw"))[4:])
    blob[0] = 2
    body = bytes(blob[:-32])
    hmac_key = hashlib.pbkdf2_hmac("sha1", b"pw", body[10:18], 10_000, 32)
    v2 = body + hmac.new(hmac_key, body, hashlib.sha256).digest()
    assert load(gzip.compress(b"pswd" + v2), lambda _: "pw").values == {"quit.allow": False}


def test_right_password_on_the_third_try_opens() -> None:
    answer, asked = passwords("wrong", "", PASSWORD)
    cfg = load((DATA / "exam-password.seb").read_bytes(), answer)
    assert cfg.config_key == VECTOR_CK
    assert asked == [1, 2, 3]


def test_wrong_password_three_times_is_refused(config_log: Records) -> None:
    answer, asked = passwords("a", "b", "c", PASSWORD)
    message = refused((DATA / "exam-password.seb").read_bytes(), answer)
    assert message == (
        "exam.seb: wrong password 3 times; ask your exam organiser for the right one"
    )
    assert asked == [1, 2, 3]
    assert sum("Wrong password" in m for m in config_log.messages) == 3


def test_giving_up_on_the_password() -> None:
    data = (DATA / "exam-password.seb").read_bytes()
    answer, _ = passwords(None)
    assert "no password was given; ask your exam organiser" in refused(data, answer)
    answer, asked = passwords("nope", None)
    assert refused(data, answer) == (
        "exam.seb: wrong password; ask your exam organiser for the right one"
    )
    assert asked == [1, 2]


@pytest.mark.parametrize(
    ("prefix", "fragment"),
    [
        (b"pwcc", "configures a Safe Exam Browser client (pwcc"),
        (b"pkhs", "encrypted for a certificate (pkhs), which Lockdown cannot open"),
        (b"phsk", "encrypted for a certificate (phsk), which Lockdown cannot open"),
    ],
)
def test_unsupported_containers_are_refused_clearly(prefix: bytes, fragment: str) -> None:
    payload = bytes(20) + b"\x00\x01\x00\x00" + bytes(256)
    for data in (gzip.compress(prefix + payload), prefix + payload):
        message = refused(data)
        assert fragment in message
        assert "ask your exam organiser" in message


def _blob(data: bytes) -> bytes:
    return gzip.decompress(data)[4:]


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda good: b"", "the file is empty"),
        (lambda good: b"  \n", "the file is empty"),
        (lambda good: b"hello world, not a seb", "not a Safe Exam Browser configuration"),
        (lambda good: b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\xff" * 40, "bad gzip data"),
        (lambda good: good[: len(good) // 2], "truncated"),
        (lambda good: gzip.compress(b"pswd" + _blob(good)[:60]), "truncated or damaged"),
        (lambda good: gzip.compress(b"pswd" + b"\x04" + _blob(good)[1:]), "unsupported encryption"),
        (
            lambda good: gzip.compress(b"pswd" + b"\x03\x00" + _blob(good)[2:]),
            "unsupported encryption",
        ),
        (lambda good: gzip.compress(b"plnd" + b"not xml"), "holds no XML settings"),
        (
            lambda good: b'<?xml version="1.0" encoding="TTF-8"?><plist><dict/></plist>',
            "unknown encoding: TTF-8",
        ),
        (
            lambda good: gzip.compress(b"plnd" + gzip.compress(b"<?xml")),
            "not a valid property list",
        ),
        (
            lambda good: b"<?xml version='1.0'?><plist><array/></plist>",
            "does not hold a dictionary",
        ),
        (
            lambda good: b"<?xml version='1.0'?><plist><dict><key>a</key></dict></plist>",
            "not a valid property list",
        ),
        (
            lambda good: (
                b"<?xml version='1.0'?><plist><dict><key>d</key><date>x</date></dict></plist>"
            ),
            "not a valid property list",
        ),
        (
            lambda good: (
                b"<?xml version='1.0'?><plist><dict><key>d</key><data>A</data></dict></plist>"
            ),
            "not a valid property list",
        ),
        (
            lambda good: (
                b"<?xml version='1.0'?><plist><dict><key>i</key><integer>x</integer></dict></plist>"
            ),
            "not a valid property list",
        ),
        (
            lambda good: (
                b'<?xml version="1.0"?><!DOCTYPE plist [<!ENTITY a "aaaa">]><plist><dict/></plist>'
            ),
            "entity declarations are not supported",
        ),
        (
            lambda good: (
                b"<?xml version='1.0'?><plist><dict><key>a</key>"
                + b"<array>" * 100
                + b"</array>" * 100
                + b"</dict></plist>"
            ),
            "nested deeper than 64 levels",
        ),
        (lambda good: gzip.compress(bytes(seb.MAX_XML_BYTES + 1)), "unpacks to more than"),
        (lambda good: bytes(seb.MAX_SEB_BYTES + 1), "larger than"),
    ],
)
def test_corrupt_file_gives_one_line(make: Callable[[bytes], bytes], fragment: str) -> None:
    good = (DATA / "exam-password.seb").read_bytes()
    assert fragment in refused(make(good), lambda _: PASSWORD)


def test_a_flipped_ciphertext_byte_reads_as_a_wrong_password_never_garbage() -> None:
    data = gzip.decompress((DATA / "exam-password.seb").read_bytes())
    changed = bytearray(data)
    changed[60] ^= 0x40
    answer, asked = passwords(PASSWORD, PASSWORD, PASSWORD)
    assert "wrong password 3 times" in refused(bytes(changed), answer)
    assert asked == [1, 2, 3]


def test_looks_like_seb_tells_seb_from_lockdown_configs() -> None:
    assert seb.looks_like_seb((DATA / "exam.plist.xml").read_bytes())
    assert seb.looks_like_seb((DATA / "exam-password.seb").read_bytes())
    assert seb.looks_like_seb(b"pswd\x03\x01")
    assert not seb.looks_like_seb((DATA / "exam.toml").read_bytes())


def test_organisation_can_switch_seb_files_off() -> None:
    seb.check_allowed(Organisation(), origin="exam.seb")
    seb.check_allowed(Organisation(values={"config.allow_seb": True}), origin="exam.seb")
    with pytest.raises(ConfigError) as exc:
        seb.check_allowed(Organisation(values={"config.allow_seb": False}), origin="exam.seb")
    assert str(exc.value).startswith("exam.seb: Safe Exam Browser files are switched off")


def test_a_password_that_cannot_be_utf8_counts_as_wrong() -> None:
    answer, asked = passwords("\udcff", PASSWORD)
    assert load((DATA / "exam-password.seb").read_bytes(), answer).config_key == VECTOR_CK
    assert asked == [1, 2]
