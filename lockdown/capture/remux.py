"""Join a stream's WebM segments into one file without re-encoding (for review).

Each segment is a self-contained WebM (its own header and keyframe); its packets are
copied into one output stream, shifted to the segment's real start from ``origin``, so
an outage between segments shows as a gap in the timeline.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol


class Timed(Protocol):
    """A segment's place in time (a spool manifest record has it)."""

    @property
    def start_utc(self) -> datetime: ...


def join(records: Sequence[Timed], media: Iterable[bytes], origin: datetime, out: Path) -> int:
    """Write the segments' packets into one WebM at their real times; packets written."""
    import av

    written = 0
    output: Any = av.open(str(out), "w", format="webm")
    try:
        target: Any = None
        for record, data in zip(records, media, strict=True):
            source: Any = av.open(io.BytesIO(data), "r")
            try:
                (in_stream,) = source.streams
                if target is None:
                    target = output.add_stream_from_template(in_stream)
                offset = (record.start_utc - origin).total_seconds()
                shift = round(offset / in_stream.time_base)
                for packet in source.demux(in_stream):
                    if packet.dts is None:  # the demuxer's flush packet
                        continue
                    packet.pts = (packet.pts or 0) + shift
                    packet.dts = packet.dts + shift
                    packet.stream = target
                    output.mux(packet)
                    written += 1
            finally:
                source.close()
    finally:
        output.close()
    return written
