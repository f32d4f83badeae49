"""Windows process facts: the PE version resource's OriginalFilename (catches renamed copies).

The logic (:func:`original_filename`: which translations to try, in which order) is
separate from the thin ctypes adapter (:class:`Win32VersionApi`: ``GetFileVersionInfoW``
and ``VerQueryValueW`` of version.dll), so tests run it against a ``spec_set`` fake.
NOT RUN ON REAL WINDOWS: the adapter follows the documented API but is unverified.
"""

from __future__ import annotations

import sys
from typing import Final, Protocol

#: Tried after the file's own translations: US English with Unicode, Windows-1252, neutral.
FALLBACK_TRANSLATIONS: Final = ((0x0409, 0x04B0), (0x0409, 0x04E4), (0x0000, 0x04B0))


class VersionApi(Protocol):
    """The native calls, nothing else."""

    def file_version_info(self, path: str) -> bytes | None:
        """The raw version-info block of ``path``; None when it has none."""
        ...

    def translations(self, block: bytes) -> list[tuple[int, int]]:
        r"""The (language, codepage) pairs of ``\VarFileInfo\Translation``."""
        ...

    def string_value(self, block: bytes, sub_block: str) -> str | None:
        r"""The string at ``\StringFileInfo\<lang><cp>\<Name>``; None when absent."""
        ...


def original_filename(path: str, api: VersionApi | None = None) -> str | None:
    """The OriginalFilename of a PE file, or None (no resource, not readable)."""
    if api is None:
        if sys.platform != "win32":
            return None
        api = Win32VersionApi()
    block = api.file_version_info(path)
    if not block:
        return None
    seen: list[tuple[int, int]] = []
    for pair in [*api.translations(block), *FALLBACK_TRANSLATIONS]:
        if pair in seen:
            continue
        seen.append(pair)
        lang, codepage = pair
        value = api.string_value(
            block, f"\\StringFileInfo\\{lang:04x}{codepage:04x}\\OriginalFilename"
        )
        if value and value.strip("\0 "):
            return value.strip("\0 ")
    return None


class Win32VersionApi:
    """version.dll through ctypes (Windows only)."""

    def __init__(self) -> None:
        import ctypes
        from ctypes import wintypes

        self._ctypes = ctypes
        dll = ctypes.WinDLL("version", use_last_error=True)  # type: ignore[attr-defined,unused-ignore]
        self._size = dll.GetFileVersionInfoSizeW
        self._size.argtypes = [wintypes.LPCWSTR, ctypes.POINTER(wintypes.DWORD)]
        self._size.restype = wintypes.DWORD
        self._info = dll.GetFileVersionInfoW
        self._info.argtypes = [wintypes.LPCWSTR, wintypes.DWORD, wintypes.DWORD, ctypes.c_void_p]
        self._info.restype = wintypes.BOOL
        self._query = dll.VerQueryValueW
        self._query.argtypes = [
            ctypes.c_void_p,
            wintypes.LPCWSTR,
            ctypes.POINTER(ctypes.c_void_p),
            ctypes.POINTER(wintypes.UINT),
        ]
        self._query.restype = wintypes.BOOL

    def file_version_info(self, path: str) -> bytes | None:
        ctypes = self._ctypes
        from ctypes import wintypes

        handle = wintypes.DWORD(0)
        size = self._size(path, ctypes.byref(handle))
        if not size:
            return None
        buffer = ctypes.create_string_buffer(size)
        if not self._info(path, 0, size, buffer):
            return None
        raw: bytes = buffer.raw
        return raw

    def _value(self, block: bytes, sub_block: str) -> tuple[int, int] | None:
        ctypes = self._ctypes
        from ctypes import wintypes

        self._buffer = ctypes.create_string_buffer(block, len(block))
        pointer = ctypes.c_void_p()
        length = wintypes.UINT(0)
        if not self._query(self._buffer, sub_block, ctypes.byref(pointer), ctypes.byref(length)):
            return None
        if not pointer.value or not length.value:
            return None
        return pointer.value, length.value

    def translations(self, block: bytes) -> list[tuple[int, int]]:
        found = self._value(block, "\\VarFileInfo\\Translation")
        if found is None:
            return []
        address, size = found
        raw = self._ctypes.string_at(address, size)
        return [
            (int.from_bytes(raw[i : i + 2], "little"), int.from_bytes(raw[i + 2 : i + 4], "little"))
            for i in range(0, len(raw) - 3, 4)
        ]

    def string_value(self, block: bytes, sub_block: str) -> str | None:
        found = self._value(block, sub_block)
        if found is None:
            return None
        address, chars = found
        return self._ctypes.wstring_at(address, chars)
