"""Screen-capture watch: a program reading the screen is seen at the X server and named.

On X11 no window can be hidden from other clients (DESIGN.md), so the exam cannot stop
``ffmpeg -f x11grab``, ``xwd -root`` or an ``mss`` script from reading it; it can see
them do it. :class:`ScreenCaptureWatchGuard` runs an X RECORD context over all clients
(:mod:`lockdown.platform.x11_record`, its own connections and thread) that reports each
``GetImage``, ``ShmGetImage`` and Composite ``NameWindowPixmap`` of another client's
window or of the root window. For each capturing client, once per request kind:

- its pid and executable come from the X Resource extension
  (:mod:`lockdown.platform.xres`);
- ``guards.screen_capture`` is journalled (pid, executable, request, what was read, the
  size, and ``ms``: from reading the request to the record);
- the pid is handed to the prohibited-app policy (``on_capture``: the session passes
  the process watcher's :meth:`~lockdown.guards.processes.ProcessWatcherGuard.capture_seen`),
  which journals and, under ``close``, terminates it like a listed capture tool.

Not journalled: our own process and its children (the screen recorder reads the screen
too). The compositing manager (the owner of ``_NET_WM_CM_S0``) reads windows all the
time: it is journalled once with ``action: none`` and never handed over. At the end,
``guards.screen_capture_summary`` counts the requests of each client.

Nothing runs on the GUI thread per request; no widget is touched from the watch thread.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lockdown import log
from lockdown.config.settings import Settings
from lockdown.events import Event, EventSink
from lockdown.guards.base import Availability, GuardInfo, GuardUnavailable
from lockdown.platform.base import DesktopPlatform

if TYPE_CHECKING:
    from lockdown.platform.x11_record import CaptureRequest, CaptureWatch
    from lockdown.platform.xres import XResClients

#: ``on_capture(pid, request)``: hand a capturing process to the prohibited-app policy.
CaptureHandler = Callable[[int, str], None]


class ScreenCaptureWatchGuard:
    """Journals every other program that reads the screen, with its pid; hands it over."""

    def __init__(
        self,
        settings: Settings,
        platform: DesktopPlatform,
        on_capture: CaptureHandler | None = None,
    ) -> None:
        self._enabled: bool = settings["guards.screenshots"]
        self._platform = platform
        self.on_capture = on_capture
        self._report: EventSink | None = None
        self._watch: CaptureWatch | None = None
        self._xres: XResClients | None = None
        self._lock = threading.Lock()
        self._seen: dict[tuple[int, str], int] = {}
        self._who: dict[int, dict[str, Any]] = {}
        self._compositor = 0
        self._own: set[int] = set()
        self._counts: list[dict[str, Any]] = []
        self._running = False
        #: the time each first request of a client was journalled (tests and the bench)
        self.detected: list[tuple[float, dict[str, Any]]] = []

    @property
    def name(self) -> str:
        return "screen_capture_watch"

    def info(self) -> GuardInfo:
        if not self._enabled:
            return GuardInfo(self.name, "none", Availability.FULL, "screenshots are allowed")
        if self._platform.name != "x11":
            return GuardInfo(
                self.name, "none", Availability.FULL, "only an X display is watched this way"
            )
        return GuardInfo(self.name, "x11 record + x-resource", Availability.FULL)

    def start(self, report: EventSink) -> None:
        if self._running or not self._enabled or self._platform.name != "x11":
            return
        from lockdown.platform.x11_record import CaptureWatch, CaptureWatchUnavailable
        from lockdown.platform.xres import XResClients, XResUnavailable

        name = getattr(self._platform, "display_name", None)
        self._report = report
        try:
            self._xres = XResClients(name)
        except XResUnavailable as exc:
            log.guards.warning("Screen readers will be named by X client only: %s", exc)
            self._xres = None
        try:
            watch = CaptureWatch(name, self._on_request, self._on_client)
        except CaptureWatchUnavailable as exc:
            self._close_xres()
            raise GuardUnavailable(f"cannot watch for screen capture: {exc}") from exc
        self._compositor = watch.compositor()
        self._watch = watch
        self._running = True
        watch.start()
        log.guards.info("Screen-capture watch started (%s)", ", ".join(watch.watched))

    def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        if self._watch is not None:
            self._watch.stop()
            self._watch = None
        self._close_xres()
        with self._lock:
            for client in {k[0] for k in self._seen}:
                self._finish(client)
            counts, self._counts = self._counts, []
        if counts and self._report is not None:
            self._report(Event("guards.screen_capture_summary", {"clients": counts}))
        log.guards.info("Screen-capture watch stopped")

    def _close_xres(self) -> None:
        if self._xres is not None:
            self._xres.close()
            self._xres = None

    # -- on the watch thread ----------------------------------------------------------

    def _describe(self, client: int) -> dict[str, Any]:
        """The client's pid and executable (X Resource), looked up once per client."""
        known = self._who.get(client)
        if known is not None:
            return known
        who: dict[str, Any] = {"client": f"{client:#x}", "pid": None, "executable": ""}
        xres = self._xres
        if xres is not None:
            try:
                for c in xres.clients():
                    if c.base == client:
                        who = c.describe()
                        break
            except Exception as exc:  # the display is going away: name it by client only
                log.guards.debug("X Resource lookup failed (%s)", exc)
        self._who[client] = who
        return who

    def _on_client(self, client: int, started: bool) -> None:
        """A client connected (name it now: a one-shot tool may be gone before its
        request is handled) or disconnected (its resource-id base will name another)."""
        with self._lock:
            if started:
                for _ in range(3):  # measured: rarely not listed with its pid at once
                    self._who.pop(client, None)
                    if self._describe(client).get("pid") is not None:
                        break
                    time.sleep(0.002)
                return
            self._finish(client)

    def _finish(self, client: int) -> None:
        """Move the client's counts to the summary (under the lock)."""
        who = self._who.pop(client, {"client": f"{client:#x}"})
        for key in [k for k in self._seen if k[0] == client]:
            count = self._seen.pop(key)
            if client not in self._own:
                self._counts.append({**who, "request": key[1], "count": count})
        self._own.discard(client)

    def _ours(self, pid: int | None) -> bool:
        if pid is None:
            return False
        if pid == os.getpid():
            return True
        from lockdown.guards.processes import OwnTree, inspect

        facts = inspect(pid)
        return facts is not None and OwnTree().contains(facts)

    def _on_request(self, request: CaptureRequest) -> None:
        key = (request.client, request.request)
        with self._lock:
            if not self._running:
                return
            count = self._seen.get(key, 0)
            self._seen[key] = count + 1
            if count:
                return  # journalled once per client and request kind
            who = self._describe(request.client)
            if who.get("pid") is None:  # named too early (still connecting): ask again
                self._who.pop(request.client, None)
                who = self._describe(request.client)
        pid = who.get("pid")
        if self._ours(pid):
            with self._lock:
                self._own.add(request.client)
            log.guards.debug("Screen read by our own process %s (%s)", pid, request.request)
            return
        compositor = self._compositor != 0 and request.client == self._compositor
        payload: dict[str, Any] = {
            **who,
            "request": request.request,
            "drawable": "root" if request.owner == 0 else f"{request.drawable:#x}",
            "size": [request.width, request.height],
            "action": "none (compositing manager)" if compositor else "prohibited_app_policy",
        }
        if request.owner != 0:
            payload["drawable_client"] = f"{request.owner:#x}"
        payload["ms"] = round((time.monotonic() - request.seen_at) * 1000, 1)
        log.guards.warning(
            "Screen read by pid %s (%s): %s", pid, who.get("executable"), request.request
        )
        if self._report is not None:
            self._report(Event("guards.screen_capture", payload))
        self.detected.append((time.monotonic(), payload))
        if not compositor and pid is not None and self.on_capture is not None:
            try:
                self.on_capture(int(pid), request.request)
            except Exception:
                log.guards.exception("Handing pid %s to the prohibited-app policy failed", pid)
