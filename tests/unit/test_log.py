"""Category loggers, JSON logging and the secret filter."""

from __future__ import annotations

import io
import json
import logging

import pytest

from lockdown import log


@pytest.fixture
def captured() -> io.StringIO:
    handler = log.setup(json_logging=True, level=logging.DEBUG)
    stream = io.StringIO()
    handler.setStream(stream)  # type: ignore[attr-defined]
    yield stream
    logging.getLogger("lockdown").removeHandler(handler)
    logging.getLogger("lockdown").propagate = True


def test_json_logging_writes_one_object_per_line(captured: io.StringIO) -> None:
    log.guards.info("Blocked %s", "alt+Tab")
    log.init.warning("Starting kiosk…")
    first, second = (json.loads(line) for line in captured.getvalue().splitlines())
    assert first["name"] == "lockdown.guards"
    assert first["message"] == "Blocked alt+Tab"
    assert first["levelname"] == "INFO"
    assert second["name"] == "lockdown.init"


@pytest.mark.parametrize(
    ("message", "secret"),
    [
        ("connecting with token=abc123def456", "abc123def456"),
        ('{"password": "hunter22"}', "hunter22"),
        (
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig",
            "eyJhbGciOiJIUzI1NiJ9.payload.sig",
        ),
        ("session_key=deadbeefcafe&x=1", "deadbeefcafe"),
        (
            "key -----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI\n-----END PRIVATE KEY-----",
            "MC4CAQAwBQYDK2VwBCIEI",
        ),
        ("api_key: sk_live_1234567", "sk_live_1234567"),
    ],
)
def test_secrets_never_reach_the_log(captured: io.StringIO, message: str, secret: str) -> None:
    log.session.info(message)
    out = captured.getvalue()
    assert secret not in out
    assert log.REDACTED in out


def test_registered_secret_is_redacted_in_arguments_and_tracebacks(captured: io.StringIO) -> None:
    log.register_secret("s3ss10n-t0ken-value")
    log.upload.info("uploading for %s", "s3ss10n-t0ken-value")
    try:
        raise RuntimeError("failed with s3ss10n-t0ken-value")
    except RuntimeError:
        log.upload.exception("upload failed")
    assert "s3ss10n-t0ken-value" not in captured.getvalue()


def test_plain_text_is_kept(captured: io.StringIO) -> None:
    log.capture.info("camera at 15 fps, keyboard locked, password dialog shown")
    assert "camera at 15 fps, keyboard locked, password dialog shown" in captured.getvalue()


def test_every_category_logger_exists() -> None:
    for category in ("init", "web", "guards", "capture", "upload", "session", "checks"):
        assert getattr(log, category).name == f"lockdown.{category}"
