"""Shared fixtures: the session's own Xvfb (and openbox on demand), the PulseAudio
virtual microphone and local HTTP servers. Nothing needs to be prepared by hand."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

# WORKAROUND(PLATFORM.md, "Qt WebEngine"): as root Chromium refuses to start without this
# and the test process dies silently. Only for root; never for a normal user.
if os.geteuid() == 0:
    os.environ.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")
# Chromium must not try to reach the network on its own during tests.
os.environ.setdefault(
    "QTWEBENGINE_CHROMIUM_FLAGS", "--disable-background-networking --disable-component-update"
)

from tests.support.httpserver import LocalServer
from tests.support.pulse import VirtualMicrophone
from tests.support.xserver import Xvfb

if TYPE_CHECKING:  # imported by the fixtures only: SQLAlchemy and the service load on use
    from tests.support.postgres import PostgresServer
    from tests.support.s3 import MotoServer
    from tests.support.service import ServiceProcess, Storage

_session_x: Xvfb | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Start one Xvfb for the whole run before Qt can be imported by any test module."""
    global _session_x
    # This run's processes (and a lockdown a test starts) form one "login session", so
    # a prohibited-app guard of this run closes none of another run's (no logind here).
    os.environ.setdefault("LOCKDOWN_DEV_PROCESS_SESSION", f"run-{uuid.uuid4().hex[:12]}")
    # The suite drives the kiosk with xdotool (XTEST): the injected-input guard accepts it
    # (journalled as session.dev_switch); its own tests switch the refusal back on.
    os.environ.setdefault("LOCKDOWN_DEV_ACCEPT_XTEST", "1")
    if os.environ.get("LOCKDOWN_TEST_USE_DISPLAY"):
        return
    _session_x = Xvfb().start()
    os.environ.update(_session_x.env)
    os.environ["QT_QPA_PLATFORM"] = "xcb"


def pytest_unconfigure(config: pytest.Config) -> None:
    if _session_x is not None:
        _session_x.stop()


@pytest.fixture(scope="session")
def xserver() -> Xvfb:
    """The run's Xvfb (no window manager unless a test asks for ``window_manager``)."""
    if _session_x is None:
        pytest.fail("no session X server (LOCKDOWN_TEST_USE_DISPLAY set?)")
    return _session_x


@pytest.fixture
def window_manager(xserver: Xvfb) -> Iterator[Xvfb]:
    """openbox running on the session display for the duration of one test."""
    xserver.start_wm()
    yield xserver
    xserver.stop_wm()


@pytest.fixture
def fresh_xserver() -> Iterator[Xvfb]:
    """A separate Xvfb for tests that start their own processes (end-to-end)."""
    x = Xvfb().start()
    yield x
    x.stop()


@pytest.fixture(scope="session")
def virtual_microphone() -> Iterator[VirtualMicrophone]:
    mic = VirtualMicrophone().start()
    saved = {k: os.environ.get(k) for k in mic.env}
    os.environ.update(mic.env)
    yield mic
    mic.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def http_server() -> Iterator[LocalServer]:
    server = LocalServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def lockdown_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """One real ``lockdown-server serve`` (uvicorn, SQLite, local folder) for the test session.

    Tests share it: each makes its own exam and candidates (unique ids), never kills it.
    """
    from tests.support.service import ServiceProcess

    service = ServiceProcess(tmp_path_factory.mktemp("service") / "data").start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL 15 for the test session (``initdb`` as ``nobody`` into a temporary
    folder, on 127.0.0.1); each test takes a fresh database with ``new_database()``."""
    from tests.support import postgres as pg

    reason = pg.available()
    if reason is not None:
        pytest.skip(reason)
    server = pg.PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """One real S3-compatible endpoint (``moto`` in server mode on 127.0.0.1) for the test
    session; each test takes a fresh bucket with ``new_bucket()``."""
    from tests.support.s3 import MotoServer

    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log").start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "pg-s3"])
def storage(request: pytest.FixtureRequest) -> Storage:
    """Run the test on SQLite + the data folder, then on PostgreSQL + S3 (fresh ones)."""
    from tests.support.service import Storage

    if request.param == "sqlite":
        return Storage()
    return shared_storage(request)


def shared_storage(request: pytest.FixtureRequest) -> Storage:
    """A fresh PostgreSQL database and S3 bucket on the session's servers."""
    from tests.support.service import Storage

    server: PostgresServer = request.getfixturevalue("postgres")
    s3: MotoServer = request.getfixturevalue("moto")
    return Storage(server.new_database(), s3.new_bucket(), s3.endpoint)


@pytest.fixture
def service_factory(tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """Fresh services a test may kill and restart: ``service_factory(data=…, extra=(…))``
    (``ca=`` the certificate to trust when ``extra`` serves TLS; ``storage=`` PostgreSQL +
    S3 from the ``storage`` fixture)."""
    from tests.support.service import ServiceProcess, Storage

    made: list[ServiceProcess] = []

    def make(
        data: Path | None = None,
        extra: tuple[str, ...] = (),
        ca: Path | None = None,
        storage: Storage | None = None,
    ) -> ServiceProcess:
        service = ServiceProcess(
            data or tmp_path / f"service-{len(made)}",
            extra=extra,
            ca=ca,
            storage=storage or Storage(),
        )
        made.append(service)
        return service.start()

    yield make
    for service in made:
        service.stop()


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Mount real tmpfs file systems of a given size (a full disk); needs root (CI is)."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        folder = tmp_path / f"tmpfs-{len(mounted)}"
        folder.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); needs root")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=True)


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
