"""Every text the candidate sees in the kiosk, by id (one place, ready for translation).

Other packages keep their candidate-facing texts in their own ``TEXTS`` mapping keyed by
id; the lead merges them here. Use :func:`text` to look one up with its placeholders.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

TEXTS: Final[Mapping[str, str]] = MappingProxyType(
    {
        # toolbar
        "toolbar.reload": "Reload",
        "toolbar.zoom_in": "Zoom in",
        "toolbar.zoom_out": "Zoom out",
        "toolbar.zoom_reset": "Reset zoom",
        "toolbar.quit": "Quit exam",
        "toolbar.time_remaining": "Time left {time}",
        "toolbar.time_over": "Time is up",
        "toolbar.battery": "Battery {percent}%",
        "toolbar.battery_charging": "Battery {percent}% (charging)",
        "toolbar.network_up": "Online",
        "toolbar.network_down": "Offline",
        # blocked and error pages
        "blocked.title": "This page is not part of the exam",
        "blocked.body": "The exam browser did not open this address:",
        "blocked.popup": "The exam tried to open a new window, which this exam does not allow:",
        "blocked.hint": "Go back to the exam. If you need this page for the exam, tell your invigilator.",
        "blocked.back": "Back to the exam",
        "error.title": "The exam page could not be loaded",
        "error.body": "The exam browser could not reach:",
        "error.hint": "Check that your computer is connected to the internet, then try again. "
        "If it keeps failing, tell your invigilator.",
        "error.retry": "Try again",
        # notices
        "notice.print_blocked": "Printing is not allowed during the exam.",
        "notice.download_blocked": "Downloads are not allowed during the exam.",
        "notice.second_instance": "Another exam was opened while this one runs; "
        "only one exam session can run at a time.",
        "notice.dismiss": "OK",
        # quit dialog
        "quit.title": "Quit the exam",
        "quit.confirm": "Do you really want to quit the exam?",
        "quit.password_prompt": "Enter the quit password to end the exam:",
        "quit.wrong_password": "Wrong password.",
        "quit.wait": "Wrong password. Try again in {seconds} s.",
        "quit.ok": "Quit exam",
        "quit.cancel": "Back to the exam",
        "quit.ending": "Ending the exam…",
        # permissions asked of the candidate
        "permission.ask": "The exam page asks to use {feature}. Allow it?",
        "permission.camera": "your camera",
        "permission.microphone": "your microphone",
        "permission.camera_microphone": "your camera and microphone",
        "permission.screen_share": "your screen",
        "permission.notifications": "notifications",
        "permission.geolocation": "your location",
        "permission.clipboard_read": "your clipboard",
        # Safe Exam Browser file password
        "seb.password_title": "Exam settings are protected",
        "seb.password_prompt": "Enter the password for these exam settings:",
        "seb.password_retry": "Wrong password, try again ({attempt} of 3):",
        # single instance (printed by the second process)
        "instance.refused": "an exam is already running on this computer and only one session "
        "can run at a time; finish it first",
    }
)


def text(text_id: str, **values: object) -> str:
    """The text with id ``text_id``, placeholders filled; an unknown id is a programming error."""
    return TEXTS[text_id].format(**values) if values else TEXTS[text_id]
