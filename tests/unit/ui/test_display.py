"""Is there a usable display: asked of the display server itself, before Qt starts."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from lockdown.ui.display import X11_TCP_BASE, NoUsableDisplay, display_problem, require_display


@pytest.fixture
def x_tcp_display() -> Iterator[str]:
    """A listening TCP socket on 127.0.0.1 at 6000 + n, named as the display 127.0.0.1:n."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        if port <= X11_TCP_BASE:
            pytest.skip(f"the free port {port} is below {X11_TCP_BASE}; cannot name it a display")
        yield f"127.0.0.1:{port - X11_TCP_BASE}.0"


def test_no_display_variable_is_one_phrase() -> None:
    assert display_problem({}, "linux") == "no display: DISPLAY is not set"


def test_an_unreachable_x_display_says_which() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free again once closed: nothing listens there
    problem = display_problem({"DISPLAY": f"127.0.0.1:{port - X11_TCP_BASE}"}, "linux")
    assert problem == (
        f"cannot reach the X display 127.0.0.1:{port - X11_TCP_BASE} (Connection refused)"
    )


def test_a_reachable_x_display_is_usable(x_tcp_display: str) -> None:
    assert display_problem({"DISPLAY": x_tcp_display}, "linux") is None


@pytest.mark.x11
def test_the_session_xvfb_is_usable(xserver: object) -> None:
    import os

    assert display_problem({"DISPLAY": os.environ["DISPLAY"]}, "linux") is None


def test_a_wayland_socket_is_usable(tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "wayland-7"))
        server.listen()
        env = {"WAYLAND_DISPLAY": "wayland-7", "XDG_RUNTIME_DIR": str(tmp_path)}
        assert display_problem(env, "linux") is None
        # the X11 plugin forced: the Wayland socket does not count
        assert display_problem({**env, "QT_QPA_PLATFORM": "xcb"}, "linux") == (
            "no display: DISPLAY is not set"
        )


def test_a_malformed_display_name_is_named() -> None:
    assert display_problem({"DISPLAY": "nonsense"}, "linux") == (
        "DISPLAY='nonsense' is not a display name like :0"
    )


def test_platforms_without_a_display_server_are_left_to_qt() -> None:
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None
    assert display_problem({}, "win32") is None
    assert display_problem({}, "darwin") is None


def test_require_display_is_a_user_error_with_exit_2() -> None:
    with pytest.raises(NoUsableDisplay) as caught:
        require_display({})
    assert caught.value.exit_code == 2
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("no display: DISPLAY is not set; start Lockdown from your desktop")
