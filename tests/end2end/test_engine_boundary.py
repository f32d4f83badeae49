"""Trust boundary II, end to end with the real `lockdown open`: the candidate's engine flags do
nothing, a sub-resource redirect and WebRTC reach no blocked host.

Every attack has its positive control in this module: the same page or environment with the
protection switched off by a development switch (``LOCKDOWN_DEV_ENGINE_ENVIRONMENT=inherit``,
``LOCKDOWN_DEV_NETWORK_GATE=off``) does open the port, reach the proxy, run the program
and reach the sinks.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import PySide6
import pytest

from lockdown.events import read_records
from tests.end2end.test_open import (
    _reap,  # noqa: F401  (the autouse fixture that reaps our processes)
    config,
    free_port,
    journal_of,
    listening,
    lockdown,
    wait_for_line,
)
from tests.support.httpserver import LocalServer, Response
from tests.support.xserver import Xvfb

pytestmark = [pytest.mark.x11, pytest.mark.webengine, pytest.mark.slow]


@pytest.fixture
def other_server() -> Iterator[LocalServer]:
    """A second origin: a site the exam must not reach (or the candidate's proxy)."""
    server = LocalServer().start()
    yield server
    server.stop()


def wait_until(check: Callable[[], bool], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def stop(proc: subprocess.Popen[str], lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    proc.send_signal(signal.SIGTERM)
    lines += wait_for_line(proc, "Session finished")
    assert proc.wait(30) == 0
    return lines


# -- the candidate's engine flags -----------------------------------------------------------


def wrapper(folder: Path, name: str, program: str = '"$@"') -> tuple[Path, Path]:
    """A shell script that leaves a marker file, then runs ``program``; (script, marker)."""
    marker = folder / f"{name}-ran"
    script = folder / f"{name}.sh"
    script.write_text(f"#!/bin/sh\ntouch {shlex.quote(str(marker))}\nexec {program}\n")
    script.chmod(0o755)
    return script, marker


def flag_attack(tmp_path: Path, proxy: LocalServer) -> tuple[dict[str, str], int, list[Path]]:
    """The candidate's environment: a debugging port, a proxy and a renderer prefix in the
    engine's flags, and a helper program of their own (``QTWEBENGINEPROCESS_PATH``)."""
    port = free_port()
    prefix, prefix_ran = wrapper(tmp_path, "prefix")
    real = Path(PySide6.__file__).parent / "Qt" / "libexec" / "QtWebEngineProcess"
    helper, helper_ran = wrapper(tmp_path, "helper", f'{shlex.quote(str(real))} "$@"')
    flags = (
        "--disable-background-networking "
        f"-remote-debugging-port={port} "  # one dash: Chromium takes it too
        f"--proxy-server=127.0.0.1:{proxy.port} --proxy-bypass-list=<-loopback> "
        f"--renderer-cmd-prefix={prefix}"
    )
    env = {"QTWEBENGINE_CHROMIUM_FLAGS": flags, "QTWEBENGINEPROCESS_PATH": str(helper)}
    return env, port, [prefix_ran, helper_ran]


def test_flag_attacks_work_when_the_candidates_environment_is_inherited(
    tmp_path: Path, fresh_xserver: Xvfb, http_server: LocalServer, other_server: LocalServer
) -> None:
    """Control: the development switch passes the candidate's flags on as they are."""
    http_server.page("/", "<p>exam</p>")
    env, port, markers = flag_attack(tmp_path, other_server)
    env["LOCKDOWN_DEV_ENGINE_ENVIRONMENT"] = "inherit"
    # a proxy sees the absolute URL: it serves its own page under the exam's address
    other_server.routes[http_server.url("/")] = Response(body=b"<p>the proxy's page</p>")
    cfg = config(tmp_path, http_server.url("/"))
    proc = lockdown(
        tmp_path, fresh_xserver, "open", str(cfg), instance=uuid.uuid4().hex, env_extra=env
    )
    # the exam page comes from the candidate's proxy, rewritten
    lines = wait_for_line(proc, "Page loaded", timeout=60)
    assert wait_until(lambda: listening(port))
    for marker in markers:
        assert wait_until(marker.exists), marker.name
    assert [r.path for r in other_server.requests][:1] == [http_server.url("/")]
    assert http_server.requests == []
    records = read_records(journal_of(stop(proc, lines)))
    switches = [r["payload"] for r in records if r["type"] == "kiosk.dev_switch"]
    assert {"name": "LOCKDOWN_DEV_ENGINE_ENVIRONMENT", "value": "inherit"} in switches


def test_flag_attacks_are_refused_and_journalled(
    tmp_path: Path, fresh_xserver: Xvfb, http_server: LocalServer, other_server: LocalServer
) -> None:
    http_server.page("/", "<p>exam</p>")
    env, port, markers = flag_attack(tmp_path, other_server)
    env["QTWEBENGINE_REMOTE_DEBUGGING"] = f"127.0.0.1:{free_port()}"
    env["LD_LIBRARY_PATH"] = str(tmp_path / "no-such-folder")  # journalled in development
    cfg = config(tmp_path, http_server.url("/"))
    proc = lockdown(
        tmp_path, fresh_xserver, "open", str(cfg), instance=uuid.uuid4().hex, env_extra=env
    )
    lines = wait_for_line(proc, "Page loaded")
    assert not listening(port)
    assert [m.name for m in markers if m.exists()] == []
    assert other_server.requests == []
    assert [r.path for r in http_server.requests][:1] == ["/"]
    records = read_records(journal_of(stop(proc, lines)))
    (removed,) = [r["payload"] for r in records if r["type"] == "kiosk.engine_environment_removed"]
    assert removed["refused"]["QTWEBENGINE_CHROMIUM_FLAGS"] == env["QTWEBENGINE_CHROMIUM_FLAGS"]
    assert "QTWEBENGINE_REMOTE_DEBUGGING" in removed["refused"]
    assert removed["refused"]["QTWEBENGINEPROCESS_PATH"] == env["QTWEBENGINEPROCESS_PATH"]
    (loader,) = [r["payload"] for r in records if r["type"] == "kiosk.loader_variables"]
    assert loader["variables"]["LD_LIBRARY_PATH"] == env["LD_LIBRARY_PATH"]
    (started,) = [r["payload"] for r in records if r["type"] == "kiosk.engine_started"]
    assert not any("debugging" in f or "cmd-prefix" in f for f in started["flags"])


def test_an_installed_build_refuses_loader_variables_with_one_line(
    tmp_path: Path, repo_root: Path, http_server: LocalServer
) -> None:
    """The development run above journals them; an installed build refuses to start."""
    cfg = config(tmp_path, http_server.url("/"))
    # an installed build takes no test overrides either: run it as a candidate would
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKDOWN_")}
    env.update(
        {
            "LOCKDOWN_AS_INSTALLED": "1",
            "PYTHONPATH": str(repo_root),
            "LD_LIBRARY_PATH": str(tmp_path / "no-such-folder"),
            "XDG_DATA_HOME": str(tmp_path / "data"),
            "XDG_STATE_HOME": str(tmp_path / "state"),
            "QT_QPA_PLATFORM": "xcb",
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "lockdown.cli", "open", str(cfg)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    errors = [line for line in err.splitlines() if line.startswith("lockdown: ")]
    assert errors == [
        "lockdown: the environment sets LD_LIBRARY_PATH, PYTHONPATH, which change the programs "
        "running inside the exam browser; start Lockdown from the start menu or an exam link, "
        "without them"
    ]
    assert "Traceback" not in err
    assert http_server.requests == []


# -- sub-resource redirects and WebRTC ------------------------------------------------------


class Sinks:
    """A UDP and a TCP socket on 127.0.0.1 that count what reaches them."""

    def __init__(self) -> None:
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.settimeout(0.2)
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(8)
        self.tcp.settimeout(0.2)
        self.datagrams = 0
        self.connections = 0
        self._running = True
        self._threads = [
            threading.Thread(target=self._read_udp, daemon=True),
            threading.Thread(target=self._accept, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read_udp(self) -> None:
        while self._running:
            try:
                self.udp.recvfrom(4096)
                self.datagrams += 1
            except TimeoutError:
                continue

    def _accept(self) -> None:
        while self._running:
            try:
                conn, _ = self.tcp.accept()
                self.connections += 1
                conn.close()
            except TimeoutError:
                continue

    def close(self) -> None:
        self._running = False
        for thread in self._threads:
            thread.join()
        self.udp.close()
        self.tcp.close()


@pytest.fixture
def sinks() -> Iterator[Sinks]:
    made = Sinks()
    yield made
    made.close()


def leaky_page(http_server: LocalServer, other_server: LocalServer, sinks: Sinks) -> None:
    """An exam page whose script tries the redirects and WebRTC, then says it is done."""
    for kind in ("img", "js", "fetch"):
        http_server.routes[f"/r-{kind}"] = Response(
            302, headers={"Location": other_server.url(f"/x-{kind}?answer=42")}
        )
        other_server.page(f"/x-{kind}", "leaked")
    udp, tcp = sinks.udp.getsockname()[1], sinks.tcp.getsockname()[1]
    http_server.page(
        "/",
        f"""<p>exam</p><img src="/r-img"><script src="/r-js"></script><script>
fetch('/r-fetch', {{mode: 'no-cors'}}).catch(() => null);
const pc = new RTCPeerConnection({{iceServers: [
  {{urls: 'stun:127.0.0.1:{udp}'}},
  {{urls: 'turn:127.0.0.1:{tcp}?transport=tcp', username: 'u', credential: 'p'}}]}});
pc.createDataChannel('x');
pc.createOffer().then(offer => pc.setLocalDescription(offer));
</script>""",
    )


def test_redirects_and_webrtc_reach_the_sinks_without_the_network_gate(
    tmp_path: Path,
    fresh_xserver: Xvfb,
    http_server: LocalServer,
    other_server: LocalServer,
    sinks: Sinks,
) -> None:
    """Control: without the gate, QtWebEngine lets a 302'd request and WebRTC out."""
    leaky_page(http_server, other_server, sinks)
    cfg = config(tmp_path, http_server.url("/"))
    proc = lockdown(
        tmp_path,
        fresh_xserver,
        "open",
        str(cfg),
        instance=uuid.uuid4().hex,
        env_extra={"LOCKDOWN_DEV_NETWORK_GATE": "off"},
    )
    lines = wait_for_line(proc, "Page loaded")
    assert wait_until(lambda: sinks.datagrams > 0 and sinks.connections > 0, timeout=15)
    assert wait_until(lambda: bool(other_server.requests), timeout=5)
    stop(proc, lines)


def test_redirects_and_webrtc_reach_no_blocked_host(
    tmp_path: Path,
    fresh_xserver: Xvfb,
    http_server: LocalServer,
    other_server: LocalServer,
    sinks: Sinks,
) -> None:
    leaky_page(http_server, other_server, sinks)
    cfg = config(tmp_path, http_server.url("/"))
    proc = lockdown(tmp_path, fresh_xserver, "open", str(cfg), instance=uuid.uuid4().hex)
    lines = wait_for_line(proc, "Page loaded")
    tcp = sinks.tcp.getsockname()[1]
    lines += wait_for_line(proc, f"refused a connection to 127.0.0.1:{tcp}", timeout=20)
    time.sleep(1)
    assert other_server.requests == []
    assert (sinks.datagrams, sinks.connections) == (0, 0)
    records = read_records(journal_of(stop(proc, lines)))
    refused = [r["payload"] for r in records if r["type"] == "web.connection_refused"]
    assert {"host": "127.0.0.1", "port": tcp} in [
        {"host": p["host"], "port": p["port"]} for p in refused
    ]
    blocked = {r["payload"]["url"] for r in records if r["type"] == "web.request_blocked"}
    assert {other_server.url(f"/x-{k}?answer=42") for k in ("img", "js", "fetch")} <= blocked
