"""Native process helpers: netlink datagram parsing, PE OriginalFilename logic, macOS bundles."""

from __future__ import annotations

import plistlib
import struct
from pathlib import Path
from unittest import mock

from lockdown.platform import proc_linux, proc_macos, proc_windows


def _event(what: int, pid: int, tgid: int) -> bytes:
    proc_event = struct.pack("=IIQII", what, 0, 123, pid, tgid)
    cn = struct.pack("=IIIIHH", 1, 1, 0, 0, len(proc_event), 0) + proc_event
    return struct.pack("=IHHII", 16 + len(cn), 3, 0, 0, 0) + cn


def test_exec_events_are_parsed_and_other_events_ignored() -> None:
    fork = _event(0x00000001, 10, 10)
    exec_thread = _event(proc_linux.PROC_EVENT_EXEC, 11, 12)
    data = fork + exec_thread + _event(proc_linux.PROC_EVENT_EXEC, 20, 20)
    assert list(proc_linux.parse_exec_pids(data)) == [12, 20]


def test_a_truncated_datagram_yields_nothing_past_the_cut() -> None:
    data = _event(proc_linux.PROC_EVENT_EXEC, 5, 5)
    assert list(proc_linux.parse_exec_pids(data[:-10])) == []


def test_the_subscribe_message_has_the_connector_layout() -> None:
    msg = proc_linux.subscribe_message(proc_linux.PROC_CN_MCAST_LISTEN, 77)
    length, kind, _flags, _seq, port = struct.unpack_from("=IHHII", msg)
    assert (length, kind, port) == (len(msg), 3, 77)
    assert struct.unpack_from("=IIIIHHI", msg, 16) == (1, 1, 0, 0, 4, 0, 1)


def test_proc_pids_lists_only_numeric_entries(tmp_path: Path) -> None:
    for name in ("1", "42", "self", "cpuinfo"):
        (tmp_path / name).mkdir()
    assert proc_linux.proc_pids(str(tmp_path)) == {1, 42}


def _version_api() -> mock.Mock:
    return mock.Mock(spec_set=proc_windows.VersionApi)


def test_original_filename_uses_the_files_own_translation_first() -> None:
    api = _version_api()
    api.file_version_info.return_value = b"block"
    api.translations.return_value = [(0x0407, 0x04B0)]
    api.string_value.side_effect = lambda block, sub: (
        "AnyDesk.exe\0" if sub == "\\StringFileInfo\\040704b0\\OriginalFilename" else None
    )
    assert proc_windows.original_filename(r"C:\x\notes.exe", api) == "AnyDesk.exe"
    api.string_value.assert_called_once_with(
        b"block", "\\StringFileInfo\\040704b0\\OriginalFilename"
    )


def test_original_filename_falls_back_to_us_english_and_none_without_resource() -> None:
    api = _version_api()
    api.file_version_info.return_value = b"block"
    api.translations.return_value = []
    api.string_value.side_effect = lambda block, sub: "obs64.exe" if "040904e4" in sub else None
    assert proc_windows.original_filename("obs.exe", api) == "obs64.exe"
    api.file_version_info.return_value = None
    assert proc_windows.original_filename("plain.exe", api) is None


def test_bundle_id_is_read_from_the_enclosing_app(tmp_path: Path) -> None:
    app = tmp_path / "Applications" / "Helper.app" / "Contents"
    (app / "MacOS").mkdir(parents=True)
    (app / "MacOS" / "Helper").write_bytes(b"")
    (app / "Info.plist").write_bytes(plistlib.dumps({"CFBundleIdentifier": "us.zoom.xos"}))
    exe = str(app / "MacOS" / "Helper")
    assert proc_macos.bundle_path_of(exe) == str(tmp_path / "Applications" / "Helper.app")
    assert proc_macos.bundle_id_for_exe(exe) == "us.zoom.xos"
    assert proc_macos.bundle_id_for_exe("/usr/bin/sleep") is None
