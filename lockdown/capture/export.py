"""``lockdown spool export DIR --key NAME.key --out OUTDIR``: a recording a reviewer can watch.

The spool is verified first (structure and, with the recipient's private key, every
sealed segment); then each stream's segments are joined, without re-encoding, into one
WebM per stream (``camera.webm``, ``microphone.webm``, ``screen.webm``), each segment
placed at its real time from the start of the recording, so an outage shows as a gap.
``recording.json`` lists every segment (times, sizes, SHA-256 of the media), the gaps,
the drops (size cap), the hints journalled with the recording, and what verification
found. Qt-free: the proctoring service reuses it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from lockdown import durable, log
from lockdown.capture import remux
from lockdown.capture.base import Stream
from lockdown.errors import UserError
from lockdown.upload import crypto
from lockdown.upload.base import SpoolError
from lockdown.upload.format import ManifestRecord, open_keys
from lockdown.upload.verify import listing, read_segment, verify_folder

#: A pause longer than this between two segments of a stream is listed as a gap.
GAP_TOLERANCE_S: Final = 0.5
JOURNAL_FILE: Final = "journal.jsonl"
SUMMARY_FILE: Final = "recording.json"


class ExportError(UserError):
    """The recording cannot be exported (not a spool, wrong key, unwritable output)."""


@dataclass
class StreamExport:
    """One stream's output file and what went into it."""

    stream: str
    file: str
    segments: list[dict[str, Any]] = field(default_factory=list)
    gaps: list[dict[str, Any]] = field(default_factory=list)
    packets: int = 0


def _gaps(records: list[ManifestRecord]) -> list[dict[str, Any]]:
    gaps = []
    for before, after in itertools.pairwise(records):
        pause = (after.start_utc - before.end_utc).total_seconds()
        if pause > GAP_TOLERANCE_S or after.seq != before.seq + 1:
            gaps.append(
                {
                    "after_seq": before.seq,
                    "before_seq": after.seq,
                    "from": before.end_utc.isoformat(),
                    "to": after.start_utc.isoformat(),
                    "seconds": round(pause, 3),
                    "missing_seqs": list(range(before.seq + 1, after.seq)),
                }
            )
    return gaps


def _hints(folder: Path) -> list[dict[str, Any]]:
    """The hints journalled with the recording (``lockdown record`` keeps its journal there)."""
    from lockdown.events import read_records

    path = folder / JOURNAL_FILE
    if not path.is_file():
        return []
    return [
        {"type": r["type"], "utc": r["utc"], **dict(r.get("payload", {}))}
        for r in read_records(path)
        if str(r.get("type", "")).startswith("hint.")
    ]


def export(folder: Path, key: bytes, out: Path, *, mac_key: bytes | None = None) -> dict[str, Any]:
    """Verify the spool in ``folder`` and write its streams and summary into ``out``.

    Returns:
        The summary written to ``recording.json``.

    Raises:
        SpoolError: the folder is not a readable spool or the key does not fit.
    """
    report = verify_folder(folder, key, mac_key)
    durable.make_folder(out)
    records, dropped = listing(folder)  # read only: a reviewer's export changes nothing
    origin = min((r.start_utc for r in records), default=None)
    streams: dict[str, StreamExport] = {}
    for stream in Stream:
        mine = sorted((r for r in records if r.stream is stream), key=lambda r: r.seq)
        readable = []
        for record in mine:
            try:
                readable.append((record, read_segment(folder, key, report.session_id, record)))
            except SpoolError as exc:
                log.upload.warning("Export: %s", exc)
        if not readable or origin is None:
            continue
        entry = StreamExport(stream.value, f"{stream.value}.webm")
        entry.segments = [
            {
                "seq": r.seq,
                "start": r.start_utc.isoformat(),
                "end": r.end_utc.isoformat(),
                "duration": r.duration,
                "units": r.units,
                "bytes": r.bytes,
                "sha256": r.sha256,
            }
            for r, _ in readable
        ]
        entry.gaps = _gaps([r for r, _ in readable])
        entry.packets = remux.join(
            [r for r, _ in readable], (d for _, d in readable), origin, out / entry.file
        )
        streams[stream.value] = entry
    summary: dict[str, Any] = {
        "session_id": report.session_id,
        "verified": report.ok,
        "closed": report.closed,
        "macs_checked": report.macs_checked,
        "problems": report.problems,
        "start": origin.isoformat() if origin else None,
        "streams": {
            name: {
                "file": e.file,
                "segments": e.segments,
                "gaps": e.gaps,
                "packets": e.packets,
            }
            for name, e in streams.items()
        },
        "dropped": [{"stream": d.stream.value, "seq": d.seq, "reason": d.reason} for d in dropped],
        "hints": _hints(folder),
    }
    durable.atomic_write(out / SUMMARY_FILE, (json.dumps(summary, indent=2) + "\n").encode(), 0o644)
    return summary


def main_spool_export(args: argparse.Namespace) -> int:
    """``lockdown spool export DIR --key NAME.key --out OUTDIR``; exit 1 when not intact."""
    folder, out = Path(args.dir), Path(args.out)
    try:
        key, mac_key = open_keys(folder, crypto.load_recipient_private(Path(args.key)))
        summary = export(folder, key, out, mac_key=mac_key)
    except SpoolError as exc:
        raise ExportError(str(exc)) from None
    except OSError as exc:
        raise ExportError(f"{out}: cannot write the export ({exc.strerror})") from None
    streams: Mapping[str, Any] = summary["streams"]
    for entry in streams.values():
        gaps = f", {len(entry['gaps'])} gap(s)" if entry["gaps"] else ""
        print(f"{out / entry['file']}: {len(entry['segments'])} segment(s){gaps}")
    print(f"{out / SUMMARY_FILE}: segments, gaps, drops, hashes and hints")
    for problem in summary["problems"]:
        print(f"  problem: {problem}", file=sys.stderr)
    return 0 if summary["verified"] else 1
