"""Every text the candidate sees, by id: one place, ready for translation.

Qt-free, so guards and operations name the message they want shown (an id) and the UI
looks it up. Use :func:`text` to fill in the placeholders. A test checks that every id
the code uses is defined here and every text here is used.
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
        "session.ending_title": "Ending the exam",
        "session.starting_title": "Starting the exam",
        "session.starting": "Preparing the exam and securing this computer… "
        "The exam appears in a moment.",
        "proctoring.no_recipient": "This exam is recorded, but this computer has no key to "
        "protect the recording. The exam cannot start; tell IT staff or your invigilator.",
        "session.saving_recording": "Saving the recording… Please wait, this takes at most "
        "{seconds} seconds. Keep this window open.",
        "session.finishing": "Finishing the exam… Please wait, this takes at most {seconds} "
        "seconds.",
        "session.unlocking": "Unlocking your computer…",
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
        # guards: machine policies, prohibited apps, displays, unavailable protections
        "guards.vm.denied": (
            "This exam cannot be taken in a virtual machine. Start Lockdown on the computer "
            "itself, not inside a virtual machine."
        ),
        "guards.vm.warned": (
            "Lockdown is running in a virtual machine. The exam goes on; this is noted for "
            "the reviewers."
        ),
        "guards.remote.denied": (
            "This exam cannot be taken in a remote session. Sit at the computer itself and "
            "quit remote-desktop and screen-sharing apps, then start again."
        ),
        "guards.remote.warned": (
            "This computer may be used or seen remotely. The exam goes on; this is noted for "
            "the reviewers."
        ),
        "guards.prohibited.title": "Close these applications",
        "guards.prohibited.body": (
            "These applications are not allowed during the exam. Save your work in them and "
            "close them to continue."
        ),
        "guards.prohibited.close_for_me": "Close them for me",
        "guards.prohibited.check_again": "Check again",
        "guards.prohibited.cancel": "Leave",
        "guards.prohibited.not_closed": (
            "The exam did not start: prohibited applications are still running. Close them "
            "and start again."
        ),
        "guards.prohibited.survived": "Lockdown could not close: {apps}. Close them yourself.",
        "guards.tcc.granted": (
            "These applications have access to Screen Capture (Screen Recording permission): {apps}."
        ),
        "guards.tcc.remedy": (
            "Open System Settings > Privacy & Security > Screen Recording (on older macOS: "
            "System Preferences > Security & Privacy > Screen Recording) and untick the "
            "applications listed, then check again."
        ),
        "guards.displays.too_many": (
            "{count} screens are connected, but this exam allows {allowed}. "
            "Disconnect the extra screens (or switch them off), then start the exam again."
        ),
        "guards.unavailable": (
            "The exam cannot be locked down on this computer ({guard}: {reason}). "
            "Ask your exam support for help."
        ),
        # opening an exam from a link
        "launch.downloading_title": "Opening the exam",
        "launch.downloading": "Downloading the exam settings from {host}…",
        "launch.download_waited": "{seconds} s (stops waiting after {timeout} s without an answer)",
        "launch.failed_title": "The exam could not be opened",
        "launch.failed": "The exam could not be opened: {reason}\n\nIf the link came from your "
        "exam page, try it again; if it keeps failing, ask your exam support for help.",
        # the session
        "session.not_started_title": "The exam did not start",
        "session.not_started": "The exam could not start. Close Lockdown, then start it again; "
        "if it happens again, ask your exam support for help.",
        # single instance (printed by the second process)
        "engine.environment_refused": "the environment sets {names}, which change the "
        "programs running inside the exam browser; start Lockdown from the start menu or an "
        "exam link, without them",
        "instance.refused": "an exam is already running on this computer and only one session "
        "can run at a time; finish it first",
    }
)


def text(text_id: str, **values: object) -> str:
    """The text with id ``text_id``, placeholders filled; an unknown id is a programming error."""
    return TEXTS[text_id].format(**values) if values else TEXTS[text_id]
