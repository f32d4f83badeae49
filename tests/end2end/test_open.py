"""The real `lockdown open` process: an exam ends through its quit URL, a second instance is
refused, bad targets exit 2 with one line."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from lockdown import build
from lockdown.events import read_records, verify
from lockdown.texts import text
from tests.integration.ui.tls import https_url, make_certificate, tls_server
from tests.support.httpserver import LocalServer, Response
from tests.support.processes import renamed_copy
from tests.support.xserver import Xvfb

pytestmark = [pytest.mark.x11, pytest.mark.webengine, pytest.mark.slow]


_started: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _reap() -> Any:
    """Kill what a failed test left running and close every pipe (no ResourceWarning)."""
    yield
    while _started:
        proc = _started.pop()
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def lockdown(
    tmp_path: Path,
    x: Xvfb | None,
    *argv: str,
    instance: str,
    env_extra: dict[str, str] | None = None,
    org_extra: str = "",
) -> subprocess.Popen[str]:
    org = tmp_path / "organisation.toml"
    # This test machine is a virtual machine: the tests allow it (the default denies).
    org.write_text(
        "[settings]\nconfig.allow_unsigned = true\n"
        'guards.virtual_machine = "allow"\nguards.remote_session = "allow"\n' + org_extra,
        encoding="utf-8",
    )
    env = {**os.environ, "LOCKDOWN_INSTANCE_NAME": instance, **(env_extra or {})}
    if x is not None:
        env.update(x.env)
    env["QT_QPA_PLATFORM"] = "xcb"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lockdown.cli",
            "--temp-basedir",
            "--json-logging",
            "--organisation",
            str(org),
            *argv,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _started.append(proc)
    return proc


def config_text(start: str, quit_url: str = "", browser: str = "") -> str:
    return (
        f'format = 1\n[exam]\ntitle = "E2E"\n[browser]\nstart_url = "{start}"\n{browser}'
        f'[quit]\nurl = "{quit_url}"\n'
    )


def config(tmp_path: Path, start: str, quit_url: str = "", browser: str = "") -> Path:
    path = tmp_path / "exam.toml"
    path.write_text(config_text(start, quit_url, browser), encoding="utf-8")
    return path


def wait_for_line(
    proc: subprocess.Popen[str], needle: str, timeout: float = 30
) -> list[dict[str, Any]]:
    assert proc.stderr is not None
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        if line.startswith("{"):
            seen.append(json.loads(line))
            if needle in seen[-1]["message"]:
                return seen
    raise AssertionError(f"no log line with {needle!r}; saw {[s['message'] for s in seen]}")


def journal_of(lines: list[dict[str, Any]]) -> Path:
    message = next(m["message"] for m in lines if m["message"].startswith("Journal at "))
    return Path(message.removeprefix("Journal at "))


def test_exam_ends_through_its_quit_url_and_the_session_is_reverted(
    tmp_path: Path, fresh_xserver: Xvfb, http_server: LocalServer
) -> None:
    http_server.page(
        "/", "<p>exam</p><script>setTimeout(() => location.href = '/done', 800)</script>"
    )
    cfg = config(tmp_path, http_server.url("/"), http_server.url("/done"))
    instance = f"e2e-{uuid.uuid4().hex}"
    proc = lockdown(tmp_path, fresh_xserver, "open", str(cfg), instance=instance)
    lines = wait_for_line(proc, "Page loaded")
    lines += wait_for_line(proc, "Session finished")
    assert proc.wait(30) == 0
    path = journal_of(lines)
    assert verify(path).records >= 4
    types = [r["type"] for r in read_records(path)]
    assert types[0] == "session.started"
    assert types[-2:] == ["session.ended", "journal.closed"]
    # the guards ran during the exam and the revert went in reverse order: the desktop
    # guards stop before the kiosk closes
    assert "guards.started" in types
    assert "guards.process_watcher" in types
    tail = types[types.index("kiosk.ended") :]
    assert tail.index("guards.stopped") < tail.index("kiosk.closed")
    assert read_records(path)[-2]["payload"]["reason"] == "quit_url"
    # the start says which build ran, where every setting came from and what it honoured
    started = read_records(path)[0]["payload"]
    org = tmp_path / "organisation.toml"
    assert started["build"] == "development"
    assert started["identity"] == build.compute_identity()
    assert started["organisation"] == {
        "path": str(org),
        "sha256": hashlib.sha256(org.read_bytes()).hexdigest(),
    }
    dev = [f"{k}={v}" for k, v in os.environ.items() if k.startswith("LOCKDOWN_DEV_") and v]
    assert sorted(started["overrides"]) == sorted(
        [f"--organisation={org}", "--temp-basedir", f"LOCKDOWN_INSTANCE_NAME={instance}", *dev]
    )
    assert len(started["settings_hash"]) == 64 and started["isolation"] == "shared"
    assert started["debugging"]["denied"] is True
    assert started["debugging"]["mechanism"] == "prctl(PR_SET_DUMPABLE, 0)"
    assert started["accessibility"] is False


def test_second_instance_is_refused_and_the_first_keeps_running(
    tmp_path: Path, fresh_xserver: Xvfb, http_server: LocalServer
) -> None:
    http_server.page("/", "<p>exam</p>")
    cfg = config(tmp_path, http_server.url("/"))
    instance = f"e2e-{uuid.uuid4().hex}"
    first = lockdown(tmp_path, fresh_xserver, "open", str(cfg), instance=instance)
    try:
        lines = wait_for_line(first, "Page loaded")
        second = lockdown(tmp_path, fresh_xserver, "open", str(cfg), instance=instance)
        _, err = second.communicate(timeout=30)
        assert second.returncode == 2
        last = err.strip().splitlines()[-1]
        assert last.startswith("lockdown: ") and "one session can run at a time" in last
        lines += wait_for_line(first, "asked to open")
        assert first.poll() is None
        first.send_signal(signal.SIGTERM)
        lines += wait_for_line(first, "Session finished")
        assert first.wait(30) == 0
    finally:
        if first.poll() is None:
            first.kill()
    types = [r["type"] for r in read_records(journal_of(lines))]
    assert "kiosk.second_instance_refused" in types


LAUNCH_SECRET = "eyJ2IjoxfQ.c2VjcmV0LWxhdW5jaC10b2tlbg"


@pytest.mark.parametrize(
    ("path", "response", "expected"),
    [
        # a launch link's token is a credential: never in the message or the journal
        (f"/missing.toml?token={LAUNCH_SECRET}", None, "answered 404"),
        ("/page.html", b"<html><body>Welcome</body></html>", "not valid TOML"),
    ],
)
def test_bad_lockdown_links_exit_2_with_one_line(
    tmp_path: Path, http_server: LocalServer, path: str, response: bytes | None, expected: str
) -> None:
    if response is not None:
        http_server.page(path, response.decode())
    link = http_server.url(path).replace("http://", "lockdown://")
    proc = lockdown(tmp_path, None, "open", link, instance=f"e2e-{uuid.uuid4().hex}")
    # A link launch has no terminal: the candidate is shown the reason, and closes it.
    close_window(tmp_path, text("launch.failed_title"))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    errors = [line for line in err.splitlines() if line.startswith("lockdown: ")]
    assert len(errors) == 1 and expected in errors[0]
    assert "Traceback" not in err
    assert LAUNCH_SECRET not in err


def close_window(folder: Path, title: str, timeout: float = 30) -> None:
    """Wait for a window called ``title`` on the session display, focus it, press Return.

    WORKAROUND(shared test machine): xdotool is a listed prohibited app, and the process
    watcher of any Lockdown session running on the machine (another test run's) closes
    it by name; a renamed copy of the same binary is left alone.
    """
    tool = str(renamed_copy(folder, "x-input-helper", shutil.which("xdotool") or "xdotool"))
    found = subprocess.run(
        [tool, "search", "--sync", "--onlyvisible", "--name", f"^{title}$"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    window = found.stdout.split()[0]
    subprocess.run([tool, "windowfocus", "--sync", window, "key", "Return"], timeout=10, check=True)


def test_no_usable_display_is_one_line_before_qt_starts(tmp_path: Path) -> None:
    exam = config(tmp_path, "https://exam.example.org/")
    for display in (None, ":97"):
        env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
        if display is not None:
            env["DISPLAY"] = display
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "lockdown.cli", "--temp-basedir", "open", str(exam)],
            env={**env, "QT_QPA_PLATFORM": "xcb"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        errors = [line for line in done.stderr.splitlines() if line.startswith("lockdown: ")]
        assert len(errors) == 1, done.stderr
        assert ("DISPLAY is not set" if display is None else "X display :97") in errors[0]
        assert "xcb" not in done.stderr and "Traceback" not in done.stderr
        assert time.monotonic() - started < 10


def test_corrupt_seb_file_exits_2_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "exam.seb"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage-not-really-gzip")
    proc = lockdown(tmp_path, None, "open", str(bad), instance=f"e2e-{uuid.uuid4().hex}")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("lockdown: ")]) == 1


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.mark.parametrize("form", ["https", "lockdowns"])
def test_configuration_over_https_opens_the_exam(
    form: str,
    tmp_path: Path,
    fresh_xserver: Xvfb,
    http_server: LocalServer,
    certificate: tuple[Path, Path],
) -> None:
    http_server.page(
        "/", "<p>exam</p><script>setTimeout(() => location.href = '/done', 300)</script>"
    )
    tls = tls_server(*certificate)
    try:
        tls.routes["/exam.toml"] = Response(
            body=config_text(http_server.url("/"), http_server.url("/done")).encode(),
            content_type="application/toml",
        )
        url = https_url(tls, "/exam.toml")
        target = url.replace("https://", f"{form}://", 1)
        proc = lockdown(
            tmp_path,
            fresh_xserver,
            "open",
            target,
            instance=f"e2e-{uuid.uuid4().hex}",
            org_extra=f'network.ca_certificates = "{certificate[0]}"\n',
        )
        lines = wait_for_line(proc, "Session finished")
        assert proc.wait(30) == 0
    finally:
        tls.stop()
    assert [r.method for r in tls.seen("/exam.toml")] == ["GET"]
    records = read_records(journal_of(lines))
    assert records[0]["payload"]["origin"] == url
    assert records[-2]["payload"]["reason"] == "quit_url"


CAMERA_PAGE = """<p>exam</p><script>
async function media(constraints) {
  try {
    const stream = await navigator.mediaDevices.getUserMedia(constraints);
    stream.getTracks().forEach(t => t.stop());
    return 'stream';
  } catch (e) { return e.name; }
}
(async () => {
  const camera = await media({video: true});
  const microphone = await media({audio: true});
  await fetch('/report?camera=' + camera + '&microphone=' + microphone);
  location.href = '/done';
})();
</script>"""


def test_camera_allowed_by_the_exam_and_microphone_denied_by_default(
    tmp_path: Path, fresh_xserver: Xvfb, http_server: LocalServer
) -> None:
    """Chromium's built-in fake capture devices stand in for a camera (none exists here)."""
    http_server.page("/", CAMERA_PAGE)
    http_server.page("/report", "ok")
    cfg = config(
        tmp_path,
        http_server.url("/"),
        http_server.url("/done"),
        browser='permission.camera = "allow"\n',
    )
    proc = lockdown(
        tmp_path,
        fresh_xserver,
        "open",
        str(cfg),
        instance=f"e2e-{uuid.uuid4().hex}",
        env_extra={
            # a development switch: the engine's flags are otherwise only ours
            "LOCKDOWN_DEV_CHROMIUM_FLAGS": "--use-fake-device-for-media-stream"
        },
    )
    lines = wait_for_line(proc, "Session finished")
    assert proc.wait(30) == 0
    (report,) = http_server.seen("/report")
    query = dict(part.split("=") for part in report.path.split("?", 1)[1].split("&"))
    assert query["camera"] == "stream"
    assert query["microphone"] != "stream"
    decisions = {
        r["payload"]["feature"]: r["payload"]["decision"]
        for r in read_records(journal_of(lines))
        if r["type"] == "web.permission"
    }
    assert decisions == {"MediaVideoCapture": "allow", "MediaAudioCapture": "deny"}
