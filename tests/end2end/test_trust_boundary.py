"""The real `lockdown open` as an installed build: settings come only from where IT put them.

Each test runs the real command with ``LOCKDOWN_AS_INSTALLED=1`` in a private mount
namespace whose ``/etc`` is an overlay holding the test's own
``/etc/lockdown/organisation.toml`` (and ``/etc/hosts``): the system organisation file
is read from its fixed path without touching the machine's. Every refusal has a
positive control — the same action where it is allowed (a development build, a file
with the right permissions, a listed host, the organisation's own proxy) does take
effect — so no test can pass with the protection missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lockdown.events import read_records
from lockdown.texts import text
from lockdown.ui.hardening import LOADER_VARIABLES
from tests.integration.ui.tls import https_url, make_certificate, tls_server
from tests.support.httpserver import LocalServer, Response
from tests.support.processes import renamed_copy

pytestmark = [pytest.mark.slow]

ORG_OK = "[settings]\nconfig.allow_unsigned = false\n"
EXAM = b'format = 1\n[exam]\ntitle = "T"\n[browser]\nstart_url = "https://exam.example.org/"\n'
SEB = (Path(__file__).resolve().parents[1] / "data" / "seb" / "exam.plist.xml").read_bytes()


def _can_overlay() -> str | None:
    if os.geteuid() != 0:
        return "needs root for a private mount namespace (CI runs as root)"
    if shutil.which("unshare") is None:
        return "needs unshare (util-linux)"
    return None


if (_why := _can_overlay()) is not None:  # pragma: no cover - CI runs as root
    pytest.skip(_why, allow_module_level=True)


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    data: Path

    def journal_types(self) -> list[str]:
        files = sorted((self.data / "Lockdown" / "journals").glob("*.jsonl"))
        return [r["type"] for f in files for r in read_records(f)]

    def refusal(self) -> dict[str, str]:
        files = sorted((self.data / "Lockdown" / "journals").glob("*.jsonl"))
        records = [r for f in files for r in read_records(f) if r["type"] == "session.refused"]
        assert len(records) == 1, records
        payload: dict[str, str] = records[0]["payload"]
        return payload


class Machine:
    """A /etc of the test's own (overlaid in a private mount namespace) and the runner."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.upper = root / "upper"
        (self.upper / "lockdown").mkdir(parents=True)
        (root / "work").mkdir()
        (self.upper / "lockdown").chmod(0o755)
        shutil.copy("/etc/hosts", self.upper / "hosts")
        with (self.upper / "hosts").open("a") as hosts:
            hosts.write("127.0.0.1 exams.example.test\n")
        self.organisation = self.upper / "lockdown" / "organisation.toml"
        self.write_organisation(ORG_OK)

    def write_organisation(self, text: str, mode: int = 0o644) -> None:
        self.organisation.write_text(text, encoding="utf-8")
        self.organisation.chmod(mode)

    def run(self, *argv: str, installed: bool = True, env: dict[str, str] | None = None) -> Run:
        data = self.root / f"data-{len(list(self.root.glob('data-*')))}"
        data.mkdir(mode=0o700)
        environment = {
            **os.environ,
            "XDG_DATA_HOME": str(data),
            "XDG_STATE_HOME": str(data / "state"),
            "XDG_RUNTIME_DIR": str(data),
            **(env or {}),
        }
        if installed:
            environment["LOCKDOWN_AS_INSTALLED"] = "1"
            # the test run's own development switches would be refused first, and so
            # would loader variables a test library set in this process (OpenCV's
            # import adds to LD_LIBRARY_PATH): a candidate's launch has neither
            for name in [n for n in environment if n.startswith("LOCKDOWN_DEV_")]:
                del environment[name]
            for name in LOADER_VARIABLES:
                environment.pop(name, None)
        mount = (
            f"mount -t overlay overlay -o lowerdir=/etc,upperdir={self.upper},"
            f"workdir={self.root / 'work'} /etc"
        )
        proc = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                f'{mount} && exec "$0" "$@"',
                sys.executable,
                "-m",
                "lockdown.cli",
                *argv,
            ],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # a refused link also shows the candidate a message box: press its button
        stop = threading.Event()
        closer = threading.Thread(target=self._close_dialogs, args=(stop,), daemon=True)
        closer.start()
        try:
            stdout, stderr = proc.communicate(timeout=90)
        finally:
            stop.set()
            closer.join(10)
        return Run(proc.returncode, stdout, stderr, data)

    def _close_dialogs(self, stop: threading.Event) -> None:
        """Press Return on "The exam could not be opened" boxes until the run ends.

        WORKAROUND(shared test machine): xdotool is a listed prohibited app; a renamed
        copy is left alone by other runs' process watchers.
        """
        tool = str(renamed_copy(self.root, "x-input-helper", shutil.which("xdotool") or ""))
        while not stop.wait(0.3):
            found = subprocess.run(
                [tool, "search", "--onlyvisible", "--name", f"^{text('launch.failed_title')}$"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
            for window in found.stdout.split():
                subprocess.run(
                    [tool, "windowfocus", "--sync", window, "key", "Return"],
                    capture_output=True,
                    timeout=10,
                    check=False,
                )


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    return Machine(tmp_path)


@pytest.fixture
def exam(tmp_path: Path) -> Path:
    path = tmp_path / "exam.toml"
    path.write_bytes(EXAM)
    return path


def _one_line_refusal(run: Run, *fragments: str) -> None:
    """Exit 2, no traceback, and the last line says what was refused (log lines before it)."""
    assert run.code == 2, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("lockdown: "), run.stderr
    for fragment in fragments:
        assert fragment in last, run.stderr


# -- overrides ----------------------------------------------------------------------------


def test_own_organisation_file_by_flag_or_variable_is_refused_in_an_installed_build(
    machine: Machine, exam: Path, tmp_path: Path
) -> None:
    mine = tmp_path / "mine.toml"
    mine.write_text("this is [not toml\n")  # read, it fails with a message naming it
    for argv, env in (
        (("--organisation", str(mine), "open", str(exam)), {}),
        (("open", str(exam)), {"LOCKDOWN_ORGANISATION_FILE": str(mine)}),
    ):
        refused = machine.run(*argv, env=env)
        _one_line_refusal(refused, "refused", "installed Lockdown")
        assert "mine.toml" not in refused.stderr.split("refused")[0]
        assert refused.refusal()["reason"].startswith("refused ")
        # positive control: a development build reads the candidate's file
        honoured = machine.run(*argv, env=env, installed=False)
        _one_line_refusal(honoured, f"{mine}: not valid TOML")


def test_temp_basedir_and_resources_variable_are_refused_in_an_installed_build(
    machine: Machine, exam: Path, tmp_path: Path
) -> None:
    _one_line_refusal(machine.run("--temp-basedir", "open", str(exam)), "--temp-basedir")
    resources = tmp_path / "my-resources"
    resources.mkdir()
    run = machine.run("open", str(exam), env={"LOCKDOWN_RESOURCES": str(resources)})
    _one_line_refusal(run, "LOCKDOWN_RESOURCES")
    assert run.refusal()
    # positive controls: honoured by a development build (the temporary folder is used,
    # and `lockdown environment` reads its app list from the candidate's folder)
    dev = machine.run("--temp-basedir", "open", str(exam), installed=False)
    _one_line_refusal(dev, "not signed")
    assert "Using temporary base dir" in dev.stderr and dev.journal_types() == []
    listed = machine.run("environment", env={"LOCKDOWN_RESOURCES": str(resources)}, installed=False)
    assert "prohibited-apps list not found" in listed.stdout + listed.stderr


# -- the system organisation file ---------------------------------------------------------


def test_a_group_writable_organisation_file_or_folder_is_refused(
    machine: Machine, exam: Path
) -> None:
    machine.write_organisation("this is [not toml\n")
    # positive control: with the right permissions the file is read (and found wrong)
    _one_line_refusal(machine.run("open", str(exam)), "/etc/lockdown/organisation.toml: not valid")
    machine.organisation.chmod(0o664)
    run = machine.run("open", str(exam))
    _one_line_refusal(run, "organisation.toml: refused: file", "writable by its group")
    assert "chown root:root" in run.stderr
    assert run.refusal()
    machine.organisation.chmod(0o644)
    (machine.upper / "lockdown").chmod(0o775)
    _one_line_refusal(machine.run("open", str(exam)), "refused: folder /etc/lockdown is writable")
    (machine.upper / "lockdown").chmod(0o755)
    os.chown(machine.organisation, 65534, 65534)
    _one_line_refusal(machine.run("open", str(exam)), "is owned by uid 65534, not by root")


# -- links --------------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[LocalServer]:
    one = LocalServer().start()
    one.routes["/e.toml"] = Response(body=EXAM, content_type="text/plain")
    one.routes["/e.seb"] = Response(body=SEB, content_type="application/seb")
    yield one
    one.stop()


def test_a_plain_lockdown_link_reaches_only_this_computer_or_a_listed_host(
    machine: Machine, server: LocalServer
) -> None:
    link = f"lockdown://exams.example.test:{server.port}/e.toml"
    run = machine.run("open", link)
    _one_line_refusal(run, "for this computer only")
    assert server.seen("/e.toml") == []
    assert run.refusal()["target"] == link
    # positive controls: the loopback address, and the host once the organisation lists it
    _one_line_refusal(
        machine.run("open", f"lockdown://127.0.0.1:{server.port}/e.toml"), "not signed"
    )
    assert len(server.seen("/e.toml")) == 1
    machine.write_organisation(ORG_OK + 'config.plain_http_hosts = ["exams.example.test"]\n')
    listed = machine.run("open", link)
    _one_line_refusal(listed, "not signed")
    assert len(server.seen("/e.toml")) == 2


def test_a_lockdowns_link_serving_a_seb_file_is_refused(
    machine: Machine, tmp_path: Path, server: LocalServer
) -> None:
    cert, key = make_certificate(tmp_path)
    https = tls_server(cert, key)
    try:
        https.routes["/e.seb"] = Response(body=SEB)
        machine.write_organisation(
            ORG_OK + f'network.ca_certificates = "{cert}"\nconfig.allow_seb = false\n'
        )
        url = https_url(https, "/e.seb").removeprefix("https://")
        run = machine.run("open", f"lockdowns://{url}")
        _one_line_refusal(run, "promised a Lockdown exam configuration")
        # positive control: the same body through a sebs:// link is read as a .seb
        control = machine.run("open", f"sebs://{url}")
        _one_line_refusal(control, "Safe Exam Browser")
        assert "promised" not in control.stderr
        assert len(https.seen("/e.seb")) == 2
    finally:
        https.stop()


def test_an_https_to_http_redirect_is_not_followed(
    machine: Machine, tmp_path: Path, server: LocalServer
) -> None:
    cert, key = make_certificate(tmp_path)
    https = tls_server(cert, key)
    try:
        https.routes["/down"] = Response(302, headers={"Location": server.url("/e.toml")})
        https.routes["/across"] = Response(302, headers={"Location": https_url(https, "/e.toml")})
        https.routes["/e.toml"] = Response(body=EXAM)
        machine.write_organisation(ORG_OK + f'network.ca_certificates = "{cert}"\n')
        run = machine.run("open", https_url(https, "/down"))
        _one_line_refusal(run, "redirected to", "not https; refused")
        assert server.seen("/e.toml") == []
        # positive control: a redirect that stays on https is followed
        _one_line_refusal(machine.run("open", https_url(https, "/across")), "not signed")
        assert len(https.seen("/e.toml")) == 1
    finally:
        https.stop()


def test_untrusted_args_take_exactly_one_link_that_is_not_an_option(
    machine: Machine, server: LocalServer, tmp_path: Path
) -> None:
    link = f"lockdown://127.0.0.1:{server.port}/e.toml"
    for argv, fragment in (
        (("--untrusted-args", "--organisation=/tmp/x"), "cannot start with '-'"),
        (("--untrusted-args", link, "--temp-basedir"), "exactly one link, got 2"),
        (("--untrusted-args",), "exactly one link, got 0"),
        (("open", "x", "--untrusted-args", link), "must come before the link"),
    ):
        _one_line_refusal(machine.run(*argv), fragment)
    assert server.seen("/e.toml") == []
    # positive control: one link after the guard is opened
    _one_line_refusal(machine.run("--untrusted-args", link), "not signed")
    assert len(server.seen("/e.toml")) == 1


def test_proxy_from_the_environment_is_never_used(machine: Machine, tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    https = tls_server(cert, key)
    proxy = LocalServer().start()  # records the CONNECT a proxied https download sends
    try:
        https.routes["/e.toml"] = Response(body=EXAM)
        env = {
            name: proxy.url("/")
            for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "ALL_PROXY")
        }
        machine.write_organisation(ORG_OK + f'network.ca_certificates = "{cert}"\n')
        link = https_url(https, "/e.toml").replace("https://", "lockdowns://")
        _one_line_refusal(machine.run("open", link, env=env), "not signed")
        assert proxy.requests == []
        assert len(https.seen("/e.toml")) == 1
        # positive control: the organisation's proxy is used
        machine.write_organisation(
            ORG_OK + f'network.ca_certificates = "{cert}"\nnetwork.proxy = "{proxy.url("/")}"\n'
        )
        _one_line_refusal(machine.run("open", link), "cannot download")
        assert [r.method for r in proxy.requests] == ["CONNECT"]
        assert proxy.requests[0].path == f"127.0.0.1:{https.port}"
    finally:
        proxy.stop()
        https.stop()
