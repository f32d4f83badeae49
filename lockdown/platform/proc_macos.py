"""macOS process facts: the bundle identifier of the .app a process runs from.

Read from the bundle's ``Contents/Info.plist`` (``CFBundleIdentifier``) with plistlib,
so it needs no Cocoa and is tested here with a bundle built on disk.
NOT RUN ON REAL macOS: the layout follows Apple's bundle documentation.
"""

from __future__ import annotations

import functools
import plistlib
from pathlib import PurePosixPath


def bundle_path_of(exe: str) -> str | None:
    """``/Applications/OBS.app`` for ``/Applications/OBS.app/Contents/MacOS/obs``."""
    parts = PurePosixPath(exe).parts
    for index in range(len(parts) - 3, 0, -1):
        if (
            parts[index].endswith(".app")
            and parts[index + 1] == "Contents"
            and parts[index + 2] == "MacOS"
        ):
            return str(PurePosixPath(*parts[: index + 1]))
    return None


@functools.lru_cache(maxsize=512)
def bundle_id_for_exe(exe: str) -> str | None:
    """CFBundleIdentifier of the innermost bundle holding ``exe``; None when not in one."""
    bundle = bundle_path_of(exe)
    if bundle is None:
        return None
    try:
        with open(f"{bundle}/Contents/Info.plist", "rb") as fh:
            info = plistlib.load(fh)
    except (OSError, plistlib.InvalidFileException, ValueError):
        return None
    value = info.get("CFBundleIdentifier") if isinstance(info, dict) else None
    return value if isinstance(value, str) and value else None
