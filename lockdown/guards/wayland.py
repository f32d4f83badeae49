"""Wayland told honestly: on a shared Wayland desktop the exam runs under XWayland.

There the kiosk is one X client of an X server the compositor runs. It cannot grab the
compositor's own shortcuts, cannot see native Wayland windows (one can cover the exam
unseen), cannot see native capture (the screen-cast portal, the compositor's
screenshots) nor input injected through the compositor. Lockdown recognises XWayland
only by the X server's own ``XWAYLAND`` extension
(:mod:`lockdown.platform.x11_server`), never by ``WAYLAND_DISPLAY`` or
``XDG_SESSION_TYPE``, which the candidate controls.

:func:`wayland_verdict` says, from the server's facts and the organisation's
``guards.wayland`` policy, what happens: ``warn`` journals ``guards.wayland_session``
with the guards that cannot work, and the candidate is told in the toolbar; ``refuse``
(the organisation requires a display of Lockdown's own) stops the exam from starting with
a message that says so. :data:`LIMITED` names each limited guard and why; ``lockdown
environment`` shows them as ``partial``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from lockdown.platform.x11_server import DisplayServer

#: Guards that cannot do their whole job under XWayland, and why.
LIMITED: Final = {
    "keyboard": "the compositor's own shortcuts (Super, Alt+Tab, workspace switching) "
    "are not grabbed",
    "shared_display": "native Wayland windows are invisible to X clients: they can cover "
    "the exam unseen",
    "screen_capture_watch": "native Wayland capture (the screen-cast portal, the "
    "compositor's screenshots) is not seen",
    "injected_input": "input injected through the compositor (virtual keyboards, uinput) "
    "is not told apart",
    "focus": "native Wayland windows can take the focus unseen",
}
NOTICE_ID: Final = "notice.wayland_shared"
REFUSED_ID: Final = "guards.wayland.refused"


@dataclass(frozen=True)
class WaylandVerdict:
    """What the shared Wayland desktop means for this exam."""

    xwayland: bool
    policy: str
    limited: dict[str, str] = field(default_factory=dict)

    @property
    def refused(self) -> bool:
        return self.xwayland and self.policy == "refuse"

    def as_payload(self, server: DisplayServer | None) -> dict[str, Any]:
        return {
            "server": server.kind if server is not None else "unknown",
            "policy": self.policy,
            "limited": [{"guard": g, "reason": r} for g, r in self.limited.items()],
        }


def wayland_verdict(server: DisplayServer | None, policy: str) -> WaylandVerdict:
    """The verdict for the display server ``server`` under ``guards.wayland`` ``policy``."""
    if server is None or not server.xwayland:
        return WaylandVerdict(False, policy)
    return WaylandVerdict(True, policy, dict(LIMITED))
