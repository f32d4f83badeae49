"""``lockdown session``: the exam as the whole X session a display manager started.

The installer registers ``/usr/share/xsessions/lockdown-exam.desktop``
(``packaging/linux/``); a candidate who picks "Lockdown exam" at the login screen gets
an X session with this process alone in it — no window manager, no desktop. In order:

1. Make the process non-dumpable, read the organisation file.
2. The display given (``DISPLAY``) must have no client but ours
   (:func:`lockdown.guards.display_isolation.session_display`): someone who runs
   ``lockdown session`` inside their desktop is refused with one line, exit code 2.
   The mode counts as isolated (kind ``session``): the Browser Exam Key's isolation mode
   follows, and the display-isolation operation journals ``display.isolated`` and runs
   the client watch for the whole exam.
3. Open the organisation's ``session.start_target`` or, when it sets none, ask the
   candidate for the exam link in a small keyboard-operable window
   (:mod:`lockdown.ui.startwindow`); a link that cannot be opened is journalled and asked
   for again, the reason shown.
4. Run the exam as ``lockdown open`` does. When it ends this process ends, and with it
   the X session: the display manager shows its login screen again.
"""

from __future__ import annotations

import argparse
import os
from functools import partial

from lockdown import log
from lockdown.errors import UserError
from lockdown.events import record_refusal
from lockdown.texts import text

#: The target a refusal is journalled under when the session had none yet.
NO_TARGET = "lockdown session"


def main_session(args: argparse.Namespace) -> int:
    """``lockdown session`` (see the module)."""
    from lockdown.app import _euid, _start_facts, qt_application, run_session
    from lockdown.config.settings import choose_organisation
    from lockdown.guards.display_isolation import (
        Allowed,
        DisplayChoice,
        check_exam,
        session_display,
    )
    from lockdown.guards.prefetch import PrecheckPrefetch
    from lockdown.launch import load_exam
    from lockdown.platform.trust import system_trust
    from lockdown.platform.xres import XResUnavailable
    from lockdown.ui.dialogs import seb_password_prompt
    from lockdown.ui.display import require_display
    from lockdown.ui.hardening import accessibility, prepare_engine
    from lockdown.ui.launchwindow import load_with_feedback

    debugging = system_trust().deny_debugging()
    target = NO_TARGET
    try:
        organisation = choose_organisation(getattr(args, "organisation", None))
        values = organisation.values
        name = os.environ.get("DISPLAY", "")
        if not name:
            raise UserError(text("xsession.no_display"))
        assistive = bool(values.get("accessibility.assistive_technology", False))
        try:
            shown = session_display(name, Allowed(os.getpid(), assistive))
        except XResUnavailable as exc:
            log.init.error("Cannot list the clients of %s: %s", name, exc)
            raise UserError(text("xsession.no_display")) from None
        if not shown.foreign_at_start:
            log.init.info("The session display %s has no client but ours", name)
        choice = DisplayChoice(
            "isolated", "", str(values.get("guards.display_isolation", "preferred")), shown
        )
        os.environ.pop("WAYLAND_DISPLAY", None)
        os.environ["QT_QPA_PLATFORM"] = "xcb"
        require_display()
        engine = prepare_engine(os.environ, euid=_euid(), assistive=assistive)
        accessibility(values, os.environ)
        app = qt_application()
        start_target = str(values.get("session.start_target", ""))
        problem = ""
        while True:
            target = start_target or _ask(problem)
            if not target:
                log.init.info("The candidate ended the session without opening an exam")
                return 0
            try:
                exam = load_with_feedback(
                    target,
                    organisation,
                    password=seb_password_prompt(),
                    load=partial(load_exam, mode=choice.mode),
                )
            except UserError as exc:
                if start_target:
                    raise
                # a mistyped link: journalled, and asked for again with the reason shown
                record_refusal(args.paths, target, exc)
                log.init.warning("The exam link could not be opened: %s", exc)
                problem = str(exc)
                continue
            break
        check_exam(choice, exam.settings)
    except UserError as exc:
        record_refusal(args.paths, target, exc)
        raise
    del app
    prefetch = PrecheckPrefetch(exam.settings)  # beside the window and the engine's start
    facts = _start_facts(args, debugging)
    return run_session(
        exam, args.paths, engine=engine, facts=facts, display=choice, prefetch=prefetch
    )


def _ask(problem: str) -> str:
    from lockdown.ui.startwindow import ask_exam_link

    log.init.info("Asking the candidate for the exam link")
    return ask_exam_link(problem)
