"""The uploader: every spooled segment reaches the proctoring service exactly once.

Two lanes, each its own thread, so events never wait behind media:

- **media**: first reconciles with the service (``GET …/manifest``: a segment the service
  already holds with our digest is acknowledged without sending it again — what a crash
  between the service's commit and our acknowledgement leaves), then sends pending
  segments oldest first, at most :attr:`UploadSettings.parallel` at a time. A segment is
  acknowledged only on a 200/201 whose ``digest`` equals the ``Content-Digest`` we sent.
  A ``409 digest_conflict`` (the service holds another body for that key) is journalled
  and never retried.
- **events**: the session journal's records, read from its file, in batches with client
  ids (``<journal file stem>:<seq>``; the service deduplicates) and the journal's and the
  spool's current chain heads (the service stores them: a later rewrite of the local files
  no longer matches).

A failure (no answer, 5xx, 429, 507, a body damaged on the way) backs its lane off with
exponential back-off and full jitter between :attr:`RetryPolicy.first_s` and
:attr:`RetryPolicy.max_s`, at least as long as a ``Retry-After`` asks. :attr:`Uploader.health`
says ``ok``, ``backing_off`` (the service answers but not yet) or ``offline`` (no answer
several times in a row) for the kiosk. Everything is journalled as ``upload.*`` (never a
token). :meth:`Uploader.drain` sends what is left within a deadline, with progress, and
says what stays for later.
"""

from __future__ import annotations

import enum
import json
import random
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

from lockdown import log
from lockdown.events import GENESIS, Event, EventSink
from lockdown.session.client import Reply, ServiceClient, content_digest
from lockdown.upload.base import SpoolError

#: The longest ``Retry-After`` honoured as asked (a longer one is cut to this).
MAX_RETRY_AFTER_S: Final = 600.0


class Health(enum.Enum):
    OK = "ok"
    #: the service answers, but not yet with success (5xx, 429, 507): waiting to retry
    BACKING_OFF = "backing_off"
    #: no answer several times in a row
    OFFLINE = "offline"


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off with full jitter: after the n-th failure in a row, wait a
    uniformly random time between ``first_s`` and ``min(max_s, first_s * 2**(n-1))``, and
    at least what ``Retry-After`` asked."""

    first_s: float = 1.0
    max_s: float = 60.0

    def delay(self, failures: int, rng: random.Random, retry_after: float | None = None) -> float:
        ceiling = min(self.max_s, self.first_s * 2 ** max(0, min(failures - 1, 30)))
        chosen = rng.uniform(self.first_s, ceiling)
        if retry_after is not None:
            chosen = max(chosen, min(retry_after, MAX_RETRY_AFTER_S))
        return chosen


@dataclass(frozen=True)
class UploadSettings:
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: segments in flight at once (one or two)
    parallel: int = 2
    #: failures without an answer in a row before the health says offline
    offline_after: int = 3
    #: how often an idle lane looks for new segments or journal records
    idle_s: float = 1.0
    #: journal records per events batch
    events_batch: int = 200


@dataclass(frozen=True)
class PendingSegment:
    """A spooled segment the service has not acknowledged yet."""

    stream: str
    seq: int
    #: the ``Content-Digest`` of the stored file (the manifest's ``body_sha256``)
    digest: str
    #: SHA-256 (hex) of the plaintext media (the manifest's)
    plain_sha256: str
    start_utc: str
    duration: float
    ciphertext_bytes: int

    @property
    def key(self) -> tuple[str, int]:
        return (self.stream, self.seq)


class SegmentSource(Protocol):
    """What the uploader needs of a spool: its unsent segments and a durable acknowledgement."""

    def pending(self) -> list[PendingSegment]:
        """The unacknowledged segments, oldest first."""
        ...

    def body(self, segment: PendingSegment) -> bytes:
        """The segment file exactly as stored (encrypted).

        Raises:
            SpoolError: the file is gone or is not the one the manifest lists.
        """
        ...

    def previous_digest(self, segment: PendingSegment) -> str:
        """The ``Content-Digest`` of the same stream's previous segment, or ""."""
        ...

    def acknowledge(self, segment: PendingSegment, digest: str) -> None:
        """Record durably that the service holds ``segment`` with ``digest``."""
        ...

    def counts(self) -> dict[str, int]:
        """Stored segments per stream (acknowledged or not)."""
        ...

    def head(self) -> dict[str, str]:
        """The spool manifest's chain head (``hash``, ``mac``)."""
        ...


@dataclass(frozen=True)
class DrainResult:
    """What :meth:`Uploader.drain` left: segments and journal records still to send."""

    segments_left: int
    events_left: int
    conflicts: int
    closed: bool

    @property
    def complete(self) -> bool:
        return self.segments_left == 0 and self.events_left == 0


class _Lane:
    """One lane's back-off state."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.failures = 0
        self.silent = 0  # failures in a row without an answer
        self.not_before = 0.0


class Uploader:
    """Sends one session's spool and journal to the service (see the module docstring).

    Args:
        client: the protocol client.
        session_id: the service's session (ours: the client chose it).
        token: the session's upload token (``service.json``).
        source: the spool's segments.
        journal: the session journal file (its records become the session's events), or
            None to send segments only.
        report: where ``upload.*`` records are journalled.
        settings: back-off, parallelism, batch size (tests pass short ones).
        clock: monotonic seconds (injectable).
        rng: the jitter's random source (a seeded one in tests).
    """

    def __init__(
        self,
        client: ServiceClient,
        session_id: str,
        token: str,
        source: SegmentSource,
        *,
        journal: Path | None,
        report: EventSink,
        settings: UploadSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._client = client
        self.session_id = session_id
        self._token = token
        self._source = source
        self._journal = journal
        self._report = report
        self.settings = settings or UploadSettings()
        self._clock = clock
        self._rng = rng or random.Random()
        self._cond = threading.Condition()
        self._stopping = False
        self._draining = False
        self._reconciled = False
        self._in_flight: set[tuple[str, int]] = set()
        self._conflicts: set[tuple[str, int]] = set()
        self._unreadable: set[tuple[str, int]] = set()
        self._media = _Lane("media")
        self._events = _Lane("events")
        self._health = Health.OK
        self._health_listeners: list[Callable[[Health], None]] = []
        self._events_offset = 0
        self._events_reads = 0
        self._events_seen = 0  # complete records found in the journal file so far
        self._events_sent = 0
        self._events_pending = 0
        self._last_record: Mapping[str, Any] | None = None
        self.acknowledged = 0
        self._threads: list[threading.Thread] = []
        self._on_close = on_close

    # -- the public face ------------------------------------------------------------------

    @property
    def health(self) -> Health:
        return self._health

    def on_health(self, listener: Callable[[Health], None]) -> None:
        """Call ``listener`` (on a lane's thread) whenever the health changes."""
        self._health_listeners.append(listener)

    def start(self) -> Uploader:
        self._report(Event("upload.started", {"session_id": self.session_id}))
        log.upload.info("Starting the uploader for session %s", self.session_id)
        for name, target in (
            ("upload-media", self._media_lane),
            ("upload-events", self._events_lane),
        ):
            if name == "upload-events" and self._journal is None:
                continue
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def wake(self) -> None:
        """A new segment or record is there: look now rather than at the next idle tick."""
        with self._cond:
            self._cond.notify_all()

    def left(self) -> tuple[int, int]:
        """(segments, journal records) not sent yet, as far as known now."""
        segments = [
            s
            for s in self._source.pending()
            if s.key not in self._conflicts and s.key not in self._unreadable
        ]
        with self._cond:
            return len(segments), self._events_pending

    def drain(
        self,
        deadline_s: float,
        progress: Callable[[int, int], None] | None = None,
        *,
        close: bool = False,
    ) -> DrainResult:
        """Send what is left until done or ``deadline_s`` passes; back-off waits are cut short.

        Args:
            deadline_s: seconds at most.
            progress: called with (sent so far, total) as segments are acknowledged.
            close: when everything is sent, also close the session at the service.
        """
        end = self._clock() + deadline_s
        with self._cond:
            self._draining = True
            reads_before = self._events_reads
            self._cond.notify_all()
        start_left, _ = self.left()
        start_acked = self.acknowledged
        total = start_left
        while True:
            segments, events = self._drain_state(reads_before)
            if progress is not None:
                progress(min(total, self.acknowledged - start_acked), total)
            if segments == 0 and events == 0:
                break
            remaining = end - self._clock()
            if remaining <= 0 or not any(t.is_alive() for t in self._threads):
                break
            with self._cond:
                self._cond.wait(min(0.2, remaining))
        closed = False
        if close and segments == 0 and events == 0:
            closed = self.close_session()
        result = DrainResult(segments, events, len(self._conflicts), closed)
        self._report(
            Event(
                "upload.drained",
                {
                    "session_id": self.session_id,
                    "segments_left": segments,
                    "events_left": events,
                    "conflicts": result.conflicts,
                    "closed": closed,
                },
            )
        )
        log.upload.info("Drain: %d segment(s), %d record(s) left", segments, events)
        return result

    def _drain_state(self, reads_before: int) -> tuple[int, int]:
        """(segments, records) left; records count as unknown until the events lane has
        read the journal since the drain began."""
        segments, events = self.left()
        if self._journal is None:
            return segments, 0
        with self._cond:
            if self._events_reads <= reads_before:
                return segments, max(events, 1)
        return segments, events

    def close_session(self) -> bool:
        """``POST …/close`` with the final heads and counts (idempotent)."""
        reply = self._client.close_session(
            self._token, self.session_id, self._heads(), self._source.counts()
        )
        if not reply.ok:
            log.upload.warning("Closing the session: %s", reply.describe())
        return reply.ok

    def stop(self, timeout: float = 5.0) -> None:
        """Stop both lanes (a request in flight finishes or times out on its own)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = [t for t in self._threads if t.is_alive()]

    def close_source(self) -> None:
        """Release the spool this uploader opened itself (an earlier session's)."""
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()

    # -- back-off and health ------------------------------------------------------------

    def _wait(self, seconds: float) -> bool:
        """Wait (woken early by :meth:`wake` and :meth:`stop`); False when stopping."""
        with self._cond:
            if not self._stopping and seconds > 0:
                self._cond.wait(seconds)
            return not self._stopping

    def _wait_for(self, lane: _Lane) -> bool:
        """Sleep until the lane's back-off is over; False when stopping."""
        while True:
            left = lane.not_before - self._clock()
            if left <= 0:
                return not self._stopping
            with self._cond:
                if self._stopping:
                    return False
                self._cond.wait(min(left, 0.5))

    def _failed(self, lane: _Lane, reply: Reply, what: Mapping[str, Any]) -> None:
        lane.failures += 1
        lane.silent = lane.silent + 1 if reply.status == 0 else 0
        delay = self.settings.retry.delay(lane.failures, self._rng, reply.retry_after)
        if self._draining:
            delay = min(delay, self.settings.retry.max_s)
        lane.not_before = self._clock() + delay
        self._report(
            Event(
                "upload.retry",
                {
                    "lane": lane.name,
                    **what,
                    "status": reply.status,
                    "error": reply.error,
                    "failures": lane.failures,
                    "delay_s": round(delay, 3),
                },
            )
        )
        log.upload.info("%s lane: %s; retrying in %.2f s", lane.name, reply.describe(), delay)
        self._update_health()

    def _succeeded(self, lane: _Lane) -> None:
        lane.failures = 0
        lane.silent = 0
        lane.not_before = 0.0
        self._update_health()

    def _update_health(self) -> None:
        lanes = (self._media, self._events)
        if any(lane.silent >= self.settings.offline_after for lane in lanes):
            health = Health.OFFLINE
        elif any(lane.failures for lane in lanes):
            health = Health.BACKING_OFF
        else:
            health = Health.OK
        with self._cond:
            if health is self._health:
                return
            previous, self._health = self._health, health
        self._report(Event("upload.health", {"from": previous.value, "to": health.value}))
        log.upload.info("Upload health: %s", health.value)
        for listener in list(self._health_listeners):
            try:
                listener(health)
            except Exception:
                log.upload.exception("A health listener failed")

    # -- the media lane -------------------------------------------------------------------

    def _media_lane(self) -> None:
        try:
            self._media_loop()
        except Exception:  # never silently: the health says so and the journal too
            log.upload.exception("The media lane failed")
            self._report(Event("upload.failed", {"lane": "media"}))

    def _media_loop(self) -> None:
        while not self._reconciled:
            if not self._wait_for(self._media):
                return
            self._reconcile()
        parallel = max(1, min(2, self.settings.parallel))
        with ThreadPoolExecutor(parallel, thread_name_prefix="upload-put") as pool:
            running: dict[Future[None], PendingSegment] = {}
            while not self._stopping:
                if not self._wait_for(self._media):
                    break
                with self._cond:
                    busy = set(self._in_flight)
                candidates = [
                    s
                    for s in self._source.pending()
                    if s.key not in busy
                    and s.key not in self._conflicts
                    and s.key not in self._unreadable
                ]
                for segment in candidates[: parallel - len(running)]:
                    with self._cond:
                        self._in_flight.add(segment.key)
                    running[pool.submit(self._send, segment)] = segment
                if running:
                    done, _ = wait(
                        list(running), timeout=self.settings.idle_s, return_when=FIRST_COMPLETED
                    )
                    for future in done:
                        segment = running.pop(future)
                        with self._cond:
                            self._in_flight.discard(segment.key)
                            self._cond.notify_all()
                    continue
                self._wait(self.settings.idle_s)
            for future in running:
                future.cancel()

    def _reconcile(self) -> None:
        """Acknowledge what the service already holds with our digest (after a crash)."""
        reply = self._client.manifest(self._token, self.session_id)
        if not reply.ok:
            self._failed(self._media, reply, {"request": "manifest"})
            return
        self._succeeded(self._media)
        held: dict[tuple[str, int], str] = {}
        streams = reply.body.get("streams") or {}
        if isinstance(streams, dict):
            for stream, info in streams.items():
                seqs = info.get("seqs") if isinstance(info, dict) else None
                for seq, digest in (seqs or {}).items():
                    if str(seq).isdigit():
                        held[(str(stream), int(seq))] = str(digest)
        matched = 0
        for segment in self._source.pending():
            stored = held.get(segment.key)
            if stored is None:
                continue
            ours = segment.digest
            if stored == ours:
                try:
                    self._source.acknowledge(segment, ours)
                except SpoolError as exc:
                    log.upload.error("Acknowledging %s segment %d: %s", *segment.key, exc)
                    continue
                with self._cond:
                    self.acknowledged += 1
                matched += 1
            else:
                self._conflict(segment, ours, stored)
        self._reconciled = True
        self._report(
            Event(
                "upload.reconciled",
                {"session_id": self.session_id, "held": len(held), "acknowledged": matched},
            )
        )

    def _conflict(self, segment: PendingSegment, ours: str, stored: str) -> None:
        self._conflicts.add(segment.key)
        self._report(
            Event(
                "upload.conflict",
                {"stream": segment.stream, "seq": segment.seq, "digest": ours, "stored": stored},
            )
        )
        log.upload.error(
            "The service holds another body for %s segment %d", segment.stream, segment.seq
        )

    def _send(self, segment: PendingSegment) -> None:
        what = {"stream": segment.stream, "seq": segment.seq}
        try:
            body = self._source.body(segment)
        except (SpoolError, OSError) as exc:
            self._unreadable.add(segment.key)
            self._report(Event("upload.unreadable", {**what, "error": str(exc)}))
            log.upload.error("%s segment %d cannot be sent: %s", segment.stream, segment.seq, exc)
            return
        digest = content_digest(body)
        if digest != segment.digest:  # the file changed after the manifest listed it
            self._unreadable.add(segment.key)
            self._report(Event("upload.unreadable", {**what, "error": "digest changed"}))
            return
        meta = {
            "start_utc": segment.start_utc,
            "duration": segment.duration,
            "plain_sha256": segment.plain_sha256,
            "previous_digest": self._source.previous_digest(segment),
        }
        began = self._clock()
        reply = self._client.put_segment(
            self._token,
            self.session_id,
            segment.stream,
            segment.seq,
            body,
            digest=digest,
            meta=meta,
        )
        if reply.ok and reply.body.get("digest") == digest:
            try:
                self._source.acknowledge(segment, digest)
            except SpoolError as exc:  # the service has it; the next run reconciles
                log.upload.error("Acknowledging %s: %s", what, exc)
                self._report(Event("upload.ack_failed", {**what, "error": str(exc)}))
                self._unreadable.add(segment.key)
                return
            with self._cond:
                self.acknowledged += 1
            self._report(
                Event(
                    "upload.acknowledged",
                    {
                        **what,
                        "digest": digest,
                        "status": reply.status,
                        "bytes": len(body),
                        "seconds": round(self._clock() - began, 3),
                    },
                )
            )
            self._succeeded(self._media)
            return
        if reply.status == 409 and reply.error == "digest_conflict":
            self._conflict(segment, digest, str(reply.body.get("digest", "")))
            return
        if reply.ok:  # a success that does not echo our digest acknowledges nothing
            reply = Reply(0 if not reply.status else 502, error="digest_not_echoed")
        self._failed(self._media, reply, what)

    # -- the events lane -----------------------------------------------------------------

    def _events_lane(self) -> None:
        try:
            self._events_loop()
        except Exception:
            log.upload.exception("The events lane failed")
            self._report(Event("upload.failed", {"lane": "events"}))

    def _read_records(self) -> list[dict[str, Any]]:
        """Complete journal records after the last one read (a torn tail waits)."""
        assert self._journal is not None
        try:
            with self._journal.open("rb") as fh:
                fh.seek(self._events_offset)
                data = fh.read()
        except OSError:
            return []
        end = data.rfind(b"\n") + 1
        records = []
        for line in data[:end].splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and type(record.get("seq")) is int:
                records.append(record)
        self._events_offset += end
        return records

    def _events_loop(self) -> None:
        assert self._journal is not None
        stem = self._journal.stem
        waiting: list[dict[str, Any]] = []
        while not self._stopping:
            if not self._wait_for(self._events):
                return
            waiting.extend(self._read_records())
            with self._cond:
                self._events_pending = len(waiting)
                self._events_reads += 1
            if not waiting:
                self._wait(self.settings.idle_s if not self._draining else 0.2)
                continue
            batch = waiting[: self.settings.events_batch]
            last = batch[-1]
            heads = self._heads(last)
            events = [{"id": f"{stem}:{r['seq']}", "record": r} for r in batch]
            reply = self._client.post_events(self._token, self.session_id, events, heads)
            if not reply.ok:
                self._failed(self._events, reply, {"request": "events", "records": len(batch)})
                continue
            self._succeeded(self._events)
            self._last_record = last
            del waiting[: len(batch)]
            self._events_sent += len(batch)
            with self._cond:
                self._events_pending = len(waiting)
                self._cond.notify_all()
            log.upload.debug("Sent %d journal record(s): %s", len(batch), dict(reply.body))

    def _heads(self, last: Mapping[str, Any] | None = None) -> dict[str, Any]:
        record = last if last is not None else self._last_record
        heads: dict[str, Any] = {"spool": self._source.head()}
        if record is not None:
            heads["journal"] = {
                "records": int(record.get("seq", -1)) + 1,
                "hash": str(record.get("hash", GENESIS)),
                "mac": str(record.get("mac", GENESIS)),  # an unkeyed journal has no MACs
            }
        return heads
