"""``lockdown spool verify DIR``: check every segment of a spool and summarise it.

Exit codes: 0 intact, 1 problems found (each printed), 2 the folder is not a readable spool.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lockdown.upload import crypto
from lockdown.upload.base import SpoolError
from lockdown.upload.format import open_keys
from lockdown.upload.verify import SpoolReport, verify_folder


def format_duration(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{seconds:.1f}s"


def format_bytes(count: int) -> str:
    if count >= 1024 * 1024:
        return f"{count / (1024 * 1024):.1f} MiB"
    if count >= 1024:
        return f"{count / 1024:.1f} KiB"
    return f"{count} B"


def render(report: SpoolReport) -> str:
    streams = report.streams.values()
    segments = sum(s.segments for s in streams)
    duration = sum(s.duration for s in streams)
    size = sum(s.bytes for s in streams)
    stored = sum(s.ciphertext_bytes for s in streams)
    state = (
        ("intact and closed" if report.closed else "intact but not closed")
        if report.ok
        else f"{len(report.problems)} problem(s)"
    )
    if report.ok and not report.closed and not segments:
        state = "empty"
    lines = [
        f"{report.folder}: {state}; {len(report.streams)} stream(s), {segments} segment(s), "
        f"{format_duration(duration)}, {format_bytes(size)} media "
        f"({format_bytes(stored)} encrypted)"
    ]
    for s in streams:
        dropped = f", {s.dropped} dropped (size cap)" if s.dropped else ""
        lines.append(
            f"  {s.stream:<10} {s.segments:>5} segment(s)  {format_duration(s.duration):>9}  "
            f"{format_bytes(s.bytes):>10}{dropped}"
        )
    lines.extend(f"  problem: {problem}" for problem in report.problems)
    if report.ok and not report.closed:
        lines.append(
            "  not closed: the recording ended abnormally (a crash, a kill) or its end was removed"
        )
    if report.keyed and not report.macs_checked:
        lines.append("  MACs not checked: pass --key with the recipient's private key")
    return "\n".join(lines) + "\n"


def main_spool_verify(args: argparse.Namespace) -> int:
    """Verify ``args.dir``; print a summary (or JSON with ``args.json``) and each problem."""
    as_json = bool(getattr(args, "json", False))
    try:
        key_path = getattr(args, "key", None)
        key, mac_key = (
            open_keys(Path(args.dir), crypto.load_recipient_private(Path(key_path)))
            if key_path
            else (None, None)
        )
        report = verify_folder(Path(args.dir), key, mac_key)
    except SpoolError as exc:
        if as_json:
            print(json.dumps({"ok": False, "error": str(exc)}))
        print(f"lockdown: {exc}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps(report.to_json()))
    else:
        sys.stdout.write(render(report))
    return 0 if report.ok and report.closed else 1
