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
        "notice.wayland_shared": "This desktop runs Wayland: some exam protections cannot "
        "work here, and this is recorded for the exam staff.",
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
        "guards.wayland.refused": (
            "This exam cannot run on a shared Wayland desktop: the exam browser cannot see "
            "or stop other programs there. Log out, choose an X11 (Xorg) session at the login "
            "screen, then start the exam again; or ask your exam support for help."
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
        # the proctoring service
        "service.no_launch_token": "This exam needs your personal exam link. Open the link "
        "your exam organiser sent you.",
        "service.expired_link": "Your exam link is no longer valid: it has expired or was not "
        "issued for this exam. Ask your exam organiser for a new link.",
        "service.second_session": "This exam is already open in another Lockdown window or on "
        "another computer. Close it, wait a minute, then open your exam link again.",
        "service.unreachable": "The proctoring service cannot be reached. Check that your "
        "computer is connected to the internet, then open your exam link again.",
        "service.refused": "The proctoring service did not accept this exam session. Tell "
        "your invigilator.",
        "upload.sending": "Sending the recording: {done} of {total} parts sent… Please wait, "
        "this takes at most {seconds} seconds.",
        "upload.left_for_later": "{segments} recorded part(s) could not be sent yet. They stay "
        "safely on this computer and are sent the next time you start Lockdown.",
        "upload.offline": "The recording cannot be sent right now. It is kept on this computer "
        "and sent when the connection is back.",
        "session.not_started_title": "The exam did not start",
        "session.not_started": "The exam could not start. Close Lockdown, then start it again; "
        "if it happens again, ask your exam support for help.",
        # the exam's own display (Linux)
        "display.isolation_required": "this exam runs only on a display of its own and "
        "this computer cannot start one ({reason}); ask your exam support to install "
        "Lockdown's display helper, or use a computer prepared for the exam",
        # the exam session a display manager starts (`lockdown session`)
        "xsession.not_empty": "this display already has {count} other program(s) on it "
        "({programs}); an exam session runs only as a session of its own: choose "
        '"Lockdown exam" at the login screen',
        "xsession.no_display": "no X display to run the exam session on; choose "
        '"Lockdown exam" at the login screen',
        "xsession.title": "Lockdown exam",
        "xsession.prompt": "Enter the exam link you were given, then press Enter.",
        "xsession.open": "Open exam",
        "xsession.leave": "End session",
        # single instance (printed by the second process)
        "engine.environment_refused": "the environment sets {names}, which change the "
        "programs running inside the exam browser; start Lockdown from the start menu or an "
        "exam link, without them",
        "instance.refused": "an exam is already running on this computer and only one session "
        "can run at a time; finish it first",
        # the system check (`lockdown check`, the check screen): step names, findings, remedies
        "check.status.pass": "PASS",
        "check.status.warn": "WARN",
        "check.status.fail": "FAIL",
        "check.status.skip": "SKIP",
        "check.crashed": "This step could not be checked: {reason}.",
        "check.crashed_remedy": "Run the check again. If it keeps happening, send this report "
        "to your exam support.",
        "check.timed_out": "This step took longer than {seconds} s and was stopped.",
        "check.timed_out_remedy": "Close other programs and run the check again. If it keeps "
        "happening, send this report to your exam support.",
        "check.app.title": "App and system",
        "check.app.ok": "Lockdown {version} on {os}.",
        "check.app.development": "Lockdown {version} on {os} is a development build, not an "
        "installed one; exam servers can tell.",
        "check.app.development_remedy": "Take exams with Lockdown installed from your "
        "organisation's installer.",
        "check.app.unsupported": "Lockdown {version} does not support {os}.",
        "check.app.unsupported_remedy": "Use a computer with Windows 10 or later, macOS 12 or "
        "later, or Linux.",
        "check.service.title": "Proctoring service",
        "check.service.none": "Not checked: no proctoring service is known.",
        "check.service.ok": "The proctoring service {host} answers.",
        "check.service.unreachable": "The proctoring service {host} cannot be reached: {reason}.",
        "check.service.remedy": "Check that this computer is connected to the internet: change "
        "networks or connect via ethernet. A firewall or proxy may also block {host}: ask your "
        "IT support to allow it. Then run the check again.",
        "check.clock.title": "Clock",
        "check.clock.ok": "This computer's clock is right (within {seconds} s of the service's).",
        "check.clock.off": "This computer's clock is {seconds} s {how} the proctoring service's.",
        "check.clock.remedy": "Set the clock to be set automatically (Windows: Settings > Time & "
        "language; macOS: System Settings > General > Date & Time; Linux: network time), then "
        "run the check again.",
        "check.clock.no_answer": "The clock could not be compared: the proctoring service did "
        "not answer.",
        "check.clock.no_date": "The clock could not be compared: the proctoring service did not "
        "say its time.",
        "check.displays.title": "Screens",
        "check.displays.ok": "{count} screen(s) connected.",
        "check.displays.too_many": "{count} screens are connected, but this exam allows {allowed}.",
        "check.displays.too_many_remedy": "Disconnect the extra screens (or switch them off), "
        "then run the check again.",
        "check.displays.unknown": "No screen was found ({reason}).",
        "check.displays.unknown_remedy": "Run the check on the computer's own desktop, where you "
        "will take the exam, not over a remote connection.",
        "check.vm.title": "Virtual machine",
        "check.vm.none": "This computer does not look like a virtual machine.",
        "check.vm.allowed": "This computer looks like a virtual machine ({reasons}); this exam "
        "allows it.",
        "check.vm.found": "This computer looks like a virtual machine: {reasons}.",
        "check.vm.remedy": "This exam cannot be taken in a virtual machine. Start Lockdown on "
        "the computer itself, not inside a virtual machine (VirtualBox, VMware, Parallels…).",
        "check.vm.warned": "The exam goes on; this is noted for the reviewers.",
        "check.remote.title": "Remote access",
        "check.remote.none": "Nobody appears to use or see this computer remotely.",
        "check.remote.allowed": "This computer may be used or seen remotely ({reasons}); this "
        "exam allows it.",
        "check.remote.found": "This computer may be used or seen remotely: {reasons}.",
        "check.remote.remedy": "Sit at the computer itself and quit remote-desktop and "
        "screen-sharing apps, then run the check again.",
        "check.remote.warned": "The exam goes on; this is noted for the reviewers.",
        "check.isolation.title": "Lockdown of the desktop",
        "check.isolation.ok": "The exam can be locked down here (mode: {modes}).",
        "check.isolation.partial": "The exam can be locked down here (mode: {modes}), with "
        "gaps: {guards}.",
        "check.isolation.unavailable": "The exam cannot be fully locked down here (mode: "
        "{modes}): {guards}.",
        "check.isolation.remedy": "Run Lockdown on the computer's own desktop, not over a remote "
        "connection; if this stays, ask your exam support for help.",
        "check.apps.title": "Prohibited applications",
        "check.apps.allowed": "This exam allows every application.",
        "check.apps.none": "No prohibited application is running.",
        "check.apps.running": "These applications are not allowed during the exam: {apps}.",
        "check.apps.remedy": "Save your work in them and close them, then run the check again.",
        "check.apps.remedy_close": "Save your work in them and close them, then run the check "
        "again (when the exam starts, Lockdown offers to close them for you).",
        "check.disk.title": "Free disk space",
        "check.disk.ok": "{free} MiB free; the exam needs {needed} MiB.",
        "check.disk.low": "Only {free} MiB free on the disk of {folder}; the exam needs "
        "{needed} MiB for its recording.",
        "check.disk.remedy": "Free some disk space (delete or move large files, empty the "
        "trash), then run the check again.",
        "check.screen.title": "Screen capture",
        "check.screen.ok": "Lockdown can record the screen.",
        "check.screen.not_recorded": "This exam does not record the screen.",
        "check.screen.no_permission_needed": "Lockdown can record the screen (this system asks "
        "no permission).",
        "check.screen.asked_at_start": "Lockdown can record the screen: your desktop will ask "
        "you to share it when the exam starts. Choose the whole screen.",
        "check.screen.grab_failed": "Failed to capture the screen: {reason}.",
        "check.screen.grab_remedy": "Run Lockdown on the computer's own desktop. Close programs "
        "that cover the top left corner of the screen, then run the check again.",
        "check.screen.no_display": "Failed to capture the screen: there is no screen to record.",
        "check.screen.denied": "Failed to capture the screen: {reason}.",
        "check.screen.macos_remedy": "Open System Settings > Privacy & Security > Screen "
        "Recording (on older macOS: System Preferences > Security & Privacy > Screen "
        "Recording) and tick Lockdown. If it is ticked already, untick it and tick it again; "
        "if that does not help, type tccutil reset ScreenCapture org.lockdown.Lockdown in the "
        "Terminal and allow it again. Then run the check again.",
        "check.screen.wayland_remedy": "Install your desktop's screen-sharing portal "
        "(xdg-desktop-portal with the GNOME or KDE backend), or log in to an X11 session, then "
        "run the check again.",
        "check.upload.title": "Upload test",
        "check.upload.ok": "A {kb} KiB test file was uploaded in {seconds} s.",
        "check.upload.not_recorded": "This exam records nothing, so nothing needs uploading.",
        "check.upload.no_token": "The upload was not tested: the exam's configuration has no "
        "probe token for its proctoring service.",
        "check.upload.failed": "Cannot upload files: a test file could not be uploaded to the "
        "proctoring service ({reason}).",
        "check.upload.remedy": "This is most likely caused by a poor internet connection: change "
        "networks or connect via ethernet. It can also be caused by a firewall blocking uploads "
        "to {host}: ask your IT support to allow it. Then run the check again.",
        "check.upload.rate_limited": "The upload was not tested: too many tests were run in the "
        "last minute.",
        "check.upload.rate_limited_remedy": "Wait {seconds} s, then run the check again.",
        "check.bandwidth.title": "Bandwidth",
        "check.bandwidth.ok": "Uploads run at {rate} kbit/s, enough for the recording "
        "({need} kbit/s).",
        "check.bandwidth.lag": "Uploads run at {rate} kbit/s, less than {margin} times what "
        "the exam records ({need} kbit/s): uploads may lag behind.",
        "check.bandwidth.after_exam": "Uploads run at {rate} kbit/s, slower than the exam "
        "records ({need} kbit/s): recordings will finish uploading after the exam.",
        "check.bandwidth.remedy": "You may still take the exam; keep Lockdown open after it "
        "until the upload is finished. For faster uploads change networks or connect via "
        "ethernet, and stop other uploads and video calls on your network.",
        "check.bandwidth.no_upload": "Not measured: the upload test did not run.",
        "check.cameras.title": "Cameras",
        "check.cameras.ok": "Camera found: {cameras}.",
        "check.cameras.none_listed": "This computer lists no camera of its own.",
        "check.cameras.unknown": "The cameras of this computer could not be listed ({reason}).",
        "check.cameras.several": "Several cameras face you ({cameras}). Devices with two "
        "cameras are not recommended: Lockdown records only one of them.",
        "check.cameras.front_and_back": "This device has front and back cameras ({cameras}). "
        "Such devices are not recommended.",
        "check.cameras.storage": "The camera {cameras} is also a storage device (like an action "
        "camera such as a GoPro). It should not be used as the exam's webcam.",
        "check.cameras.network": "The camera {cameras} is also a network device (like an action "
        "camera such as a GoPro used as a webcam). It should not be used as the exam's webcam.",
        "check.cameras.virtual": "A virtual camera is installed ({cameras}). The exam records "
        "a real camera only.",
        "check.cameras.remedy": "Use one front-facing webcam: an external webcam that faces you "
        "is fine, as long as it is not also a storage device. Unplug other cameras and quit "
        "virtual-camera apps (OBS, ManyCam, Snap Camera) before the exam.",
        "check.camera.title": "Camera",
        "check.camera.not_recorded": "This exam does not record the camera.",
        "check.camera.ok": "The camera works: {width}x{height} at {fps} frames per second.",
        "check.camera.not_physical_dev": "Not a physical camera: {source} ({width}x{height} at "
        "{fps} frames per second). Allowed only in a development build and the demo.",
        "check.camera.not_physical": "The configured camera ({source}) is not a physical "
        "camera: a video file or test pattern cannot be used for an exam.",
        "check.camera.not_physical_remedy": "Ask IT staff to set the camera "
        "(proctoring.camera_source) to your webcam, then run the check again.",
        "check.camera.missing": "No camera could be opened: {reason}.",
        "check.camera.missing_remedy": "Connect a webcam (or switch on the built-in one) and close "
        "other programs that use it, then run the check again.",
        "check.camera.denied": "Lockdown is not allowed to use the camera: {reason}.",
        "check.camera.denied_remedy": "Allow Lockdown to use the camera. Windows: Settings > "
        "Privacy & security > Camera, let apps (and desktop apps) use it. macOS: System Settings "
        "> Privacy & Security > Camera, tick Lockdown (untick and tick it again if it is "
        "ticked). Linux: add your user to the video group and log in again. Then run the check "
        "again.",
        "check.camera.busy": "The camera is in use by another program: {reason}.",
        "check.camera.busy_remedy": "Close other programs that use the camera (video calls, "
        "camera apps, browsers with a call open), then run the check again.",
        "check.camera.no_frames": "The camera opened but delivered no picture ({source}).",
        "check.camera.too_small": "The camera delivers only {width}x{height}; the exam needs at "
        "least 320x240.",
        "check.camera.poor": "The camera delivers {width}x{height} at {fps} frames per second; "
        "640x480 at 10 frames per second or more is recommended.",
        "check.camera.size_remedy": "Use a better webcam, or close programs that slow the "
        "computer down, then run the check again.",
        "check.camera.too_dark": "Webcam too dark: the lighting is too low to see you clearly.",
        "check.camera.too_dark_remedy": "Move to a more brightly lit area, or turn on a light in "
        "front of you (not behind you). If the lighting is not low, check that Lockdown has "
        "access to the webcam and that nothing covers it. Then run the check again.",
        "check.microphone.title": "Microphone",
        "check.microphone.not_recorded": "This exam does not record the microphone.",
        "check.microphone.sentence": 'Read this sentence aloud: "I am ready to take my exam, '
        'and I will work on my own."',
        "check.microphone.ok": "The microphone hears you: your voice rose {rise_db} dB above the "
        "background noise.",
        "check.microphone.quiet": "The microphone hardly heard you: your voice rose only "
        "{rise_db} dB above the background noise.",
        "check.microphone.quiet_remedy": "Speak up and move closer to the microphone, or choose "
        "another microphone, then retry. You may go on: this is only a warning.",
        "check.microphone.missing": "No microphone could be opened: {reason}.",
        "check.microphone.missing_remedy": "Connect a microphone or headset (or switch on the "
        "built-in one), then run the check again.",
        "check.microphone.denied": "Lockdown is not allowed to use the microphone: {reason}.",
        "check.microphone.denied_remedy": "Allow Lockdown to use the microphone. Windows: "
        "Settings > Privacy & security > Microphone. macOS: System Settings > Privacy & "
        "Security > Microphone, tick Lockdown (untick and tick it again if it is ticked). Then "
        "run the check again.",
        "check.microphone.silent": "The microphone delivers no sound at all (digital silence).",
        "check.microphone.silent_remedy": "Unmute the microphone (a mute key or switch, the "
        "system's sound settings) and check that the right input is chosen, then run the check "
        "again.",
        "check.recording.title": "Test recording",
        "check.recording.nothing": "This exam records nothing.",
        "check.recording.devices_failed": "Not tried: the camera or microphone step failed.",
        "check.recording.ok": "A {seconds}-second test recording of {streams} was made, "
        "verified and discarded.",
        "check.recording.failed": "The test recording failed: {reason}.",
        "check.recording.remedy": "Close other programs that use the camera or microphone and "
        "free some disk space, then run the check again. If it keeps failing, tell your exam "
        "support.",
        "checkscreen.title": "System check",
        "checkscreen.intro": "Lockdown checks that this computer is ready for the exam.",
        "checkscreen.retry": "Retry",
        "checkscreen.continue": "Continue",
        "checkscreen.close": "Close",
        "checkscreen.cancel": "Leave",
        "checkscreen.preview": "Camera",
        "checkscreen.no_preview": "No picture yet",
        "checkscreen.brightness": "Brightness",
        "checkscreen.level": "Microphone level",
        "checkscreen.pattern": "Test pattern: not a physical camera",
        "checkscreen.video_file": "Video file: not a physical camera",
        "checkscreen.status.pass": "Passed",
        "checkscreen.status.warn": "Warning",
        "checkscreen.status.fail": "Failed",
        "checkscreen.status.skip": "Skipped",
        "checkscreen.status.running": "Checking…",
        "checkscreen.status.waiting": "Waiting",
        "checkscreen.blocked": "Fix the failed steps (Retry beside each), then continue.",
        "checkscreen.ready": "Everything needed passed: continue to the exam.",
        "checkscreen.not_passed": "The system check did not pass; the exam was not started.",
        "check.next.ready": "Everything needed passed: you can take the exam on this computer.",
        "check.next.warnings": "Nothing blocks the exam. Read the warnings above: you can take "
        "the exam, but fixing them avoids trouble.",
        "check.next.fix": "Fix the failed steps above, then run the check again.",
        "check.report.header": "Lockdown system check: Lockdown {version} ({build} build) on "
        "{system}",
        "check.report.exam": "Checking for the exam {exam}, which records: {streams}.",
        "check.report.no_exam": "No exam given: checking what a proctored exam recording "
        "{streams} needs.",
        "check.report.no_streams": "nothing",
        "check.report.service": "Proctoring service: {url}",
        "check.report.no_service": "Proctoring service: none known, so the service steps are "
        "skipped (give the exam's configuration with --config to include them).",
        "check.report.what_to_do": "What to do:",
        "check.report.summary": "{passed} passed, {warned} warnings, {failed} failed, "
        "{skipped} skipped.",
        "check.report.failed": "Failed: {steps}.",
        "check.report.sent": "The report was sent to the proctoring service (check {check_id}).",
        "check.report.not_sent": "The report could not be sent to the proctoring service: "
        "{reason}.",
    }
)


def text(text_id: str, **values: object) -> str:
    """The text with id ``text_id``, placeholders filled; an unknown id is a programming error."""
    return TEXTS[text_id].format(**values) if values else TEXTS[text_id]
