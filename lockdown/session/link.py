"""The exam's link to its proctoring service, from the start to the drain at the end.

:class:`ServiceLink` is what the composition root holds when the exam configuration names
a service (``service.url``):

1. :meth:`ServiceLink.connect` (the ``service`` operation, before proctoring starts):
   exchanges the launch token (``service.launch_token``) for a session token.
2. :meth:`ServiceLink.drain_earlier` (the proctoring operation, once it reopened the spools
   earlier sessions left): sends them in the background, each under its own upload token.
   :meth:`ServiceLink.create_session` (once the session's spool exists) creates the session
   with the spool's header (the wrapped keys), keeps the upload token beside the spool, and
   :meth:`ServiceLink.start_uploading` starts the uploader.
3. :meth:`ServiceLink.drain` (the ``service`` operation's wind-down, after the recorders
   stopped, every lock still on): sends what is left within a deadline, with progress
   for the kiosk, and says what stays for later; the earlier spools' uploaders stop
   before the proctoring step closes their spools.
4. :meth:`ServiceLink.stop`: the uploaders stop (what is left goes at the next start or
   with ``lockdown upload``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from lockdown import __version__, log
from lockdown.events import Event, EventSink
from lockdown.lifecycle.base import Outcome
from lockdown.session.client import ServiceClient
from lockdown.session.state import (
    RECORD_FILE,
    Connected,
    Connection,
    ServiceSession,
    SessionRecord,
)
from lockdown.texts import text
from lockdown.upload.uploader import DrainResult, Health, Uploader, UploadSettings

if TYPE_CHECKING:
    from lockdown.upload.spool import Spool

#: How long the wind-down sends what is left before it says what stays for later.
DRAIN_DEADLINE_S: Final = 45.0
#: How long an earlier spool's drain may run in the background of a session.
EARLIER_DEADLINE_S: Final = 3600.0


class ServiceLink:
    """The session with the service and its uploaders (see the module docstring)."""

    def __init__(
        self,
        settings: Mapping[str, Any],
        report: EventSink,
        *,
        spool_root: Path,
        journal: Path | None,
        organisation_values: Mapping[str, Any] | None = None,
        upload_settings: UploadSettings | None = None,
    ) -> None:
        self.url = str(settings["service.url"])
        self._settings = settings
        self._report = report
        self._spool_root = spool_root
        self._journal = journal
        self._organisation = dict(organisation_values or {})
        self._upload_settings = upload_settings
        self.client = ServiceClient(self.url, organisation_values=self._organisation)
        self.session = ServiceSession(self.client, report)
        self.uploader: Uploader | None = None
        self._earlier: list[Uploader] = []
        self._earlier_thread: threading.Thread | None = None
        #: earlier sessions' records (reopened spools), the candidates for a resume
        self._earlier_records: list[tuple[Path, SessionRecord]] = []
        self._stopping = threading.Event()
        self.result: DrainResult | None = None
        self._progress = (0, 0)

    # -- 1. connect ------------------------------------------------------------------------

    def connect(self) -> Connected:
        """Exchange the launch token for a session token."""
        token = str(self._settings.get("service.launch_token", ""))
        if not token:
            self._report(
                Event(
                    "session.service_refused",
                    {"url": self.url, "step": "token", "error": "no launch token"},
                )
            )
            return Connected(Connection.REFUSED, "service.no_launch_token")
        return self.session.exchange(token)

    def drain_earlier(self, spools: Sequence[Spool]) -> None:
        """Drain earlier sessions' spools (reopened, keyless, by the proctoring step) in
        the background, each under its own session's upload token and service address."""
        found = []
        for spool in spools:
            record = SessionRecord.load(spool.folder)
            if record is not None and record.upload_token and not record.finished_utc:
                found.append((spool, record))
        self._earlier_records = [(spool.folder, record) for spool, record in found]
        if not found:
            return
        self._report(Event("upload.earlier", {"spools": [str(s.folder) for s, _ in found]}))

        def run() -> None:
            from lockdown.upload.source import SpoolSource

            for spool, record in found:
                if self._stopping.is_set():
                    return
                uploader = Uploader(
                    ServiceClient(record.url, organisation_values=self._organisation),
                    record.session_id,
                    record.upload_token,
                    SpoolSource(spool),
                    journal=_journal_of(record, spool.folder),
                    report=self._report,
                    settings=self._upload_settings,
                )
                self._earlier.append(uploader.start())
                while not self._stopping.is_set():
                    segments, events = uploader.left()
                    if segments == 0 and events == 0:
                        break
                    self._stopping.wait(0.5)
                if not self._stopping.is_set():
                    result = uploader.drain(5.0, close=True)
                    if result.complete and result.closed:
                        record.finished(spool.folder)
                uploader.stop()

        self._earlier_thread = threading.Thread(target=run, name="upload-earlier", daemon=True)
        self._earlier_thread.start()

    def _stop_earlier(self) -> None:
        self._stopping.set()
        for uploader in list(self._earlier):
            uploader.stop()
        if self._earlier_thread is not None:
            self._earlier_thread.join(5.0)

    # -- 2. the session and its uploader -------------------------------------------------

    def create_session(self, spool_folder: Path, request: Mapping[str, Any]) -> Connected:
        body = {"client_version": __version__, **request, "journal": str(self._journal or "")}
        return self.session.create(spool_folder, body, resumes=self._resumable())

    def _resumable(self) -> SessionRecord | None:
        """The newest earlier session of this candidate and exam at this service (a crash
        or kill left its spool unfinished): the new session resumes it."""
        exam = str(self.session.exam.get("id", ""))
        candidate = str(self.session.candidate.get("id", ""))
        matching = [
            (folder, record)
            for folder, record in self._earlier_records
            if record.url == self.client.base_url
            and record.exam == exam
            and record.candidate == candidate
            and exam
            and candidate
        ]
        if not matching:
            return None
        _folder, record = max(matching, key=lambda pair: _mtime(pair[0] / RECORD_FILE))
        return record

    def start_uploading(self, spool: Spool) -> Uploader | None:
        """Start sending the live spool (the recorders' own object: one process per folder)."""
        from lockdown.upload.source import SpoolSource

        record = self.session.record
        if record is None:
            return None
        self.uploader = Uploader(
            self.client,
            record.session_id,
            record.upload_token,
            SpoolSource(spool),
            journal=self._journal,
            report=self._report,
            settings=self._upload_settings,
        ).start()
        return self.uploader

    @property
    def health(self) -> Health:
        return self.uploader.health if self.uploader is not None else Health.OK

    def wake(self) -> None:
        if self.uploader is not None:
            self.uploader.wake()

    # -- 3. the drain --------------------------------------------------------------------

    def drain(self, deadline_s: float = DRAIN_DEADLINE_S) -> DrainResult | None:
        """Send what is left (progress in :attr:`progress`); None without an uploader."""
        if self.uploader is None:
            self._stop_earlier()  # before the proctoring step closes their spools
            return None

        def progress(done: int, total: int) -> None:
            self._progress = (done, total)

        self.result = self.uploader.drain(deadline_s, progress, close=True)
        self.uploader.stop()  # before the proctoring step closes the spool
        self._stop_earlier()
        return self.result

    @property
    def progress(self) -> tuple[int, int]:
        """(segments sent, segments to send) of the running drain."""
        return self._progress

    # -- 4. stop ---------------------------------------------------------------------------

    def stop(self) -> None:
        if self.uploader is not None:
            self.uploader.stop()
        self._stop_earlier()
        self.client.close()


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _journal_of(record: SessionRecord, folder: Path) -> Path | None:
    """The journal a spool's session kept (its records become the session's events)."""
    journal = Path(record.journal) if record.journal else None
    if journal is not None and not journal.is_file():
        log.upload.info("The journal of %s is gone (%s): segments only", folder, journal)
        return None
    return journal


def earlier_spools(root: Path, *, exclude: Path | None = None) -> list[tuple[Path, SessionRecord]]:
    """Spools under ``root`` with a session at a service, not yet sent for good."""
    from lockdown.upload import spool

    found = []
    for folder in spool.earlier_spools(root, exclude):
        record = SessionRecord.load(folder)
        if record is not None and record.upload_token and not record.finished_utc:
            found.append((folder, record))
    return found


def uploader_for(
    folder: Path,
    record: SessionRecord,
    report: EventSink,
    *,
    organisation_values: Mapping[str, Any] | None = None,
    settings: UploadSettings | None = None,
) -> Uploader:
    """An uploader for an earlier session's spool (reopened without its keys).

    Raises:
        SpoolError: the spool cannot be reopened (open in another process, not a spool).
    """
    from lockdown.upload.source import SpoolSource
    from lockdown.upload.spool import Spool

    spool = Spool.open_earlier(folder, report)
    return Uploader(
        ServiceClient(record.url, organisation_values=organisation_values),
        record.session_id,
        record.upload_token,
        SpoolSource(spool),
        journal=_journal_of(record, folder),
        report=report,
        settings=settings,
        on_close=spool.close,
    )


class ServiceStep:
    """The ``service`` operation: connect before proctoring starts, drain at the end.

    It comes before the proctoring operation, so its wind-down runs after the recorders
    stopped (wind-downs go in reverse order) and drains while every lock is still on.
    """

    name = "service"
    #: the app gives this step's wind-down this long (the drain plus a margin)
    wind_down_deadline_s = DRAIN_DEADLINE_S + 5.0

    def __init__(self, link: ServiceLink, report: EventSink) -> None:
        self.link = link
        self._report = report
        #: why the start stopped, for the candidate (a text id)
        self.message_id: str | None = None

    def perform(self) -> Outcome:
        connected = self.link.connect()
        if connected.state is not Connection.CONNECTED:
            self.message_id = connected.text_id
            return Outcome.FAILED
        return Outcome.SUCCESS

    def wind_down(self) -> Outcome:
        result = self.link.drain()
        if result is not None and not result.complete:
            log.upload.warning(
                "%d segment(s) and %d record(s) stay for later",
                result.segments_left,
                result.events_left,
            )
        return Outcome.SUCCESS

    def progress_text(self) -> str:
        """What the kiosk shows while the drain runs (called on the GUI thread)."""
        done, total = self.link.progress
        return text("upload.sending", done=done, total=total, seconds=int(DRAIN_DEADLINE_S))

    def left_text(self) -> str | None:
        """What stays for later, once drained (None when everything was sent)."""
        result = self.link.result
        if result is None or result.complete:
            return None
        return text("upload.left_for_later", segments=result.segments_left)

    def revert(self) -> Outcome:
        self.link.stop()
        return Outcome.SUCCESS
