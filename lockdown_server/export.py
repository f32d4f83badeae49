"""``lockdown-server export SESSION --out DIR``: the service's copy of a session, for review.

Writes one playable WebM per stream (each segment decrypted with the service's recipient
key and joined at its real time, through the client's own segment format and remux code),
``events.jsonl`` (the journal records received, in chain order), ``export.json`` (segments,
gaps, flags, anchored heads, what verified and what did not) and ``SHA256SUMS`` (every file
written, ``sha256sum -c`` reads it). Verification: each stored object still has the digest
it was acknowledged with, decrypts (AES-GCM) and its media matches the plaintext SHA-256;
each segment names its predecessor's digest; the journal's hash chain (and its MAC chain,
when its key is wrapped for this service) is unbroken and passes through every head the
service anchored. Exit 0 when everything verified, 1 otherwise.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from sqlalchemy import select

from lockdown import durable
from lockdown.capture import remux
from lockdown.events import GENESIS, record_hash, record_mac
from lockdown.upload import crypto
from lockdown.upload.base import SpoolError
from lockdown.upload.format import (
    ManifestRecord,
    body_sha256,
    content_digest,
    decode_segment,
    key_label,
    segment_file_name,
)
from lockdown_server.errors import ServiceError
from lockdown_server.service import Service
from lockdown_server.store import models

SUMMARY_FILE: Final = "export.json"
EVENTS_FILE: Final = "events.jsonl"
SUMS_FILE: Final = "SHA256SUMS"
GAP_TOLERANCE_S: Final = 0.5
JOURNAL_KEYS_RECORD: Final = "journal.keys"


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _digest(blob: bytes) -> str:
    return content_digest(body_sha256(blob))


def _spool_keys(header: dict[str, Any], service: Service) -> tuple[str, bytes]:
    """The spool's session id and data key, unwrapped with the service's recipient key."""
    spool_sid = header.get("session_id")
    if not isinstance(spool_sid, str) or not spool_sid:
        raise SpoolError("the session's spool header names no spool session id")
    wrapping = crypto.KeyWrapping.from_json(header.get("key_wrapping", {}))
    key = crypto.unwrap(wrapping, service.keys.recipient, label=key_label(spool_sid))
    if header.get("key_id") and crypto.key_id(key) != header["key_id"]:
        raise SpoolError("the unwrapped key does not fit the session's spool")
    return spool_sid, key


def _segments(
    service: Service, sid: str, out: Path, findings: Findings
) -> dict[str, dict[str, Any]]:
    with service.engine.connect() as conn:
        session = conn.execute(select(models.sessions).where(models.sessions.c.id == sid)).first()
        rows = conn.execute(
            select(models.segments)
            .where(models.segments.c.session_id == sid)
            .order_by(models.segments.c.stream, models.segments.c.seq)
        ).all()
    assert session is not None
    try:
        spool_sid, key = _spool_keys(json.loads(session.spool_header or "{}"), service)
    except (SpoolError, ValueError) as exc:
        if rows:
            findings.problems.append(f"the recordings cannot be decrypted: {exc}")
        return {}
    readable: dict[str, list[tuple[ManifestRecord, bytes, Any]]] = {}
    for row in rows:
        where = f"{row.stream} segment {row.seq}"
        try:
            blob = service.objects.read(row.object_key)
        except OSError as exc:
            findings.problems.append(f"{where}: the stored object is missing ({exc.strerror})")
            continue
        if _digest(blob) != row.digest:
            findings.problems.append(
                f"{where}: the stored object changed since it was acknowledged"
            )
            continue
        try:
            header, media = decode_segment(key, spool_sid, blob)
        except SpoolError as exc:
            findings.problems.append(f"{where}: {exc}")
            continue
        if (header["stream"].value, header["seq"]) != (row.stream, row.seq):
            findings.problems.append(
                f"{where}: the file inside is {header['stream']} {header['seq']}"
            )
            continue
        if header["sha256"] != row.plain_sha256:
            findings.problems.append(f"{where}: the media's SHA-256 differs from the one announced")
        record = ManifestRecord(
            **header,
            ciphertext_bytes=len(blob),
            file=segment_file_name(header["stream"], row.seq),
            body_sha256=body_sha256(blob),
        )
        readable.setdefault(row.stream, []).append((record, media, row))
    origin = min((r.start_utc for items in readable.values() for r, _, _ in items), default=None)
    streams: dict[str, dict[str, Any]] = {}
    for stream, items in readable.items():
        assert origin is not None
        gaps = []
        for (before, _, b_row), (after, _, a_row) in itertools.pairwise(items):
            if after.seq == before.seq + 1 and a_row.previous_digest not in ("", b_row.digest):
                findings.problems.append(
                    f"{stream} segment {after.seq} does not name segment {before.seq} as its "
                    "predecessor (a segment was replaced)"
                )
            pause = (after.start_utc - before.end_utc).total_seconds()
            if after.seq != before.seq + 1 or pause > GAP_TOLERANCE_S:
                gaps.append(
                    {"after_seq": before.seq, "before_seq": after.seq, "seconds": round(pause, 3)}
                )
        file_name = f"{stream}.webm"
        packets = remux.join(
            [r for r, _, _ in items], (m for _, m, _ in items), origin, out / file_name
        )
        streams[stream] = {
            "file": file_name,
            "packets": packets,
            "gaps": gaps,
            "segments": [
                {
                    "seq": r.seq,
                    "start": r.start_utc.isoformat(),
                    "end": r.end_utc.isoformat(),
                    "duration": r.duration,
                    "digest": row.digest,
                    "sha256": r.sha256,
                    "bytes": r.bytes,
                }
                for r, _, row in items
            ],
        }
    return streams


def _journal(
    service: Service, sid: str, out: Path, findings: Findings
) -> tuple[int, list[dict[str, Any]]]:
    """Write the events; check the journal chain and the anchored journal heads."""
    with service.engine.connect() as conn:
        raw = conn.scalars(
            select(models.events.c.record).where(models.events.c.session_id == sid)
        ).all()
        anchors = conn.execute(
            select(models.anchors)
            .where(models.anchors.c.session_id == sid)
            .order_by(models.anchors.c.id)
        ).all()
    records = [json.loads(text) for text in raw]
    records.sort(key=lambda r: r.get("seq") if isinstance(r.get("seq"), int) else -1)
    lines = b"".join(
        json.dumps(r, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
        for r in records
    )
    durable.atomic_write(out / EVENTS_FILE, lines, 0o644)
    mac_key = _journal_mac_key(records, service, findings)
    seen: dict[str, tuple[int, str]] = {}
    last_hash, last_mac, expected_seq = GENESIS, GENESIS, None
    for record in records:
        seq = record.get("seq")
        where = f"journal record {seq}"
        if expected_seq is not None and seq != expected_seq:
            findings.problems.append(
                f"journal records {expected_seq} to {seq} never reached the service"
            )
            last_hash = str(record.get("prev"))
            last_mac = str(record.get("prev_mac", GENESIS))
        if record.get("prev") != last_hash or record_hash(record) != record.get("hash"):
            findings.problems.append(f"{where} was edited or does not follow the one before")
        elif mac_key is not None and (
            record.get("prev_mac") != last_mac or record_mac(record, mac_key) != record.get("mac")
        ):
            findings.problems.append(f"{where}: its MAC does not match the session's key")
        last_hash, last_mac = str(record.get("hash")), str(record.get("mac", GENESIS))
        expected_seq = (seq + 1) if isinstance(seq, int) else None
        seen[last_hash] = ((seq + 1) if isinstance(seq, int) else -1, last_mac)
    heads = []
    for anchor in anchors:
        entry = {
            "chain": anchor.chain,
            "hash": anchor.hash,
            "mac": anchor.mac,
            "records": anchor.records,
            "received_at": anchor.received_at,
        }
        if anchor.chain == "journal" and anchor.hash != GENESIS:
            match = seen.get(anchor.hash)
            entry["verified"] = match is not None and match[1] == anchor.mac
            if not entry["verified"]:
                findings.problems.append(
                    f"the journal head anchored at {anchor.received_at:.0f} ({anchor.hash[:12]}…) "
                    "is not in the journal the service holds (rewritten, or events missing)"
                )
        heads.append(entry)
    if any(a.chain == "spool" for a in anchors):
        findings.notes.append(
            "spool heads are anchored (listed here); `lockdown spool verify` checks a "
            "candidate's spool against them"
        )
    return len(records), heads


def _journal_mac_key(
    records: list[dict[str, Any]], service: Service, findings: Findings
) -> bytes | None:
    opening = next((r for r in records if r.get("type") == JOURNAL_KEYS_RECORD), None)
    payload = opening.get("payload") if opening else None
    if not isinstance(payload, dict) or "mac_key" not in payload:
        findings.notes.append("the journal carries no MAC key: its hash chain only is checked")
        return None
    try:
        return crypto.unwrap(
            crypto.KeyWrapping.from_json(payload["mac_key"]),
            service.keys.recipient,
            label=f"lockdown-journal/{payload.get('chain', '')}",
        )
    except crypto.SpoolKeyError as exc:
        findings.notes.append(f"the journal's MACs are not checked: {exc}")
        return None


def export_session(service: Service, sid: str, out: Path) -> dict[str, Any]:
    """Write the session's export into ``out``; the summary (also in ``export.json``).

    Raises:
        ServiceError: no such session, or ``out`` cannot be written.
    """
    with service.engine.connect() as conn:
        session = conn.execute(select(models.sessions).where(models.sessions.c.id == sid)).first()
        flags = conn.execute(
            select(models.session_flags)
            .where(models.session_flags.c.session_id == sid)
            .order_by(models.session_flags.c.id)
        ).all()
    if session is None:
        raise ServiceError(f"no session {sid!r} on this service; check the id")
    try:
        durable.make_folder(out)
        findings = Findings()
        streams = _segments(service, sid, out, findings)
        event_count, heads = _journal(service, sid, out, findings)
        summary: dict[str, Any] = {
            "session_id": sid,
            "exam": session.exam_id,
            "candidate": session.user_id,
            "build": session.build,
            "client_version": session.client_version,
            "closed": session.closed_at is not None,
            "flags": [{"flag": f.flag, "detail": json.loads(f.detail)} for f in flags],
            "streams": streams,
            "events": event_count,
            "heads": heads,
            "verified": not findings.problems,
            "problems": findings.problems,
            "notes": findings.notes,
        }
        durable.atomic_write(
            out / SUMMARY_FILE, (json.dumps(summary, indent=2) + "\n").encode(), 0o644
        )
        sums = []
        for name in sorted([*(s["file"] for s in streams.values()), EVENTS_FILE, SUMMARY_FILE]):
            sums.append(f"{hashlib.sha256((out / name).read_bytes()).hexdigest()}  {name}\n")
        durable.atomic_write(out / SUMS_FILE, "".join(sums).encode(), 0o644)
    except OSError as exc:
        raise ServiceError(f"{out}: cannot write the export ({exc.strerror})") from None
    return summary


def main_export(service: Service, sid: str, out: Path) -> int:
    summary = export_session(service, sid, out)
    for stream in summary["streams"].values():
        gaps = f", {len(stream['gaps'])} gap(s)" if stream["gaps"] else ""
        print(f"{out / stream['file']}: {len(stream['segments'])} segment(s){gaps}")
    print(f"{out / EVENTS_FILE}: {summary['events']} event(s)")
    print(f"{out / SUMMARY_FILE}: segments, flags, anchored heads; {out / SUMS_FILE}: hashes")
    for problem in summary["problems"]:
        print(f"  problem: {problem}", file=sys.stderr)
    if summary["verified"]:
        print("everything verified against the anchored heads")
        return 0
    print(f"NOT verified: {len(summary['problems'])} problem(s)", file=sys.stderr)
    return 1
