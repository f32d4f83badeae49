"""The import rules of DESIGN.md hold: device libraries, native calls and Qt stay in their places."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "lockdown"

DEVICE_LIBS = {"cv2", "sounddevice", "mss", "numpy", "av"}
NATIVE_LIBS = {
    "ctypes",
    "Xlib",
    "objc",
    "AppKit",
    "Quartz",
    "Foundation",
    "winreg",
    "win32api",
    "win32gui",
    "pynput",
    "_winapi",
}
QT_FREE = ("config/", "lifecycle/", "session/", "upload/", "events.py", "checks/base.py")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _modules() -> list[tuple[str, set[str]]]:
    return [(p.relative_to(PACKAGE).as_posix(), _imports(p)) for p in sorted(PACKAGE.rglob("*.py"))]


def broken_rules(modules: list[tuple[str, set[str]]]) -> list[str]:
    problems = []
    for rel, names in modules:
        device_ok = rel.startswith("capture/") or (
            rel.startswith("checks/") and rel != "checks/base.py"
        )
        if not device_ok and (bad := names & DEVICE_LIBS):
            problems.append(f"{rel} imports {sorted(bad)} (only capture/ and device checks may)")
        if not rel.startswith("platform/") and (bad := names & NATIVE_LIBS):
            problems.append(f"{rel} imports {sorted(bad)} (only platform/ may)")
        if rel.startswith(QT_FREE) and "PySide6" in names:
            problems.append(f"{rel} imports PySide6 (must stay free of Qt)")
        if "lockdown_server" in names:
            problems.append(f"{rel} imports lockdown_server (the client never does)")
    return problems


def test_package_follows_the_import_rules() -> None:
    assert broken_rules(_modules()) == []


def test_rule_checker_catches_a_broken_rule() -> None:
    fake = [
        ("config/settings.py", {"PySide6"}),
        ("guards/focus.py", {"ctypes"}),
        ("ui/kiosk.py", {"cv2"}),
        ("capture/camera.py", {"cv2"}),
        ("checks/camera.py", {"cv2"}),
        ("checks/base.py", {"numpy"}),
    ]
    assert broken_rules(fake) == [
        "config/settings.py imports PySide6 (must stay free of Qt)",
        "guards/focus.py imports ['ctypes'] (only platform/ may)",
        "ui/kiosk.py imports ['cv2'] (only capture/ and device checks may)",
        "checks/base.py imports ['numpy'] (only capture/ and device checks may)",
    ]


#: Lower layers never import upper ones (module prefix -> packages it must not import).
UPWARD = {
    "guards/": ("lockdown.ui", "lockdown.app", "lockdown.launch"),
    "ui/": ("lockdown.app", "lockdown.launch"),
    "config/": ("lockdown.ui", "lockdown.app", "lockdown.launch", "lockdown.guards"),
    "capture/": ("lockdown.ui", "lockdown.app", "lockdown.launch"),
    # the segment is the spool's contract: capture imports upload, never the other way
    "upload/": (
        "lockdown.ui",
        "lockdown.app",
        "lockdown.launch",
        "lockdown.guards",
        "lockdown.capture",
    ),
    "events.py": ("lockdown.ui", "lockdown.app", "lockdown.guards", "lockdown.upload"),
    "durable.py": ("lockdown.",),
}


def _full_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


#: The one UI piece that sits above the launch: the download window wraps load_exam.
ABOVE_LAUNCH = frozenset({"ui/launchwindow.py"})


def test_lower_layers_never_import_upper_ones() -> None:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in ABOVE_LAUNCH:
            continue
        for prefix, forbidden in UPWARD.items():
            if not rel.startswith(prefix):
                continue
            for name in sorted(_full_imports(path)):
                if any(
                    name == f or name.startswith(f if f.endswith(".") else f + ".")
                    for f in forbidden
                ):
                    problems.append(f"{rel} imports {name}")
    assert problems == []


def test_the_key_algorithms_never_import_the_seb_reader() -> None:
    # seb.py computes its Config Key with examkeys; the other way round would be a cycle
    assert not {n for n in _full_imports(PACKAGE / "config" / "examkeys.py") if "seb" in n}


def _in_a_fresh_interpreter(code: str) -> str:
    """What ``code`` prints, run by a Python of its own (nothing imported beforehand)."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=PACKAGE.parent,
    )
    return done.stdout.strip()


def test_the_spool_format_imports_neither_spool_nor_capture_nor_qt() -> None:
    # the service imports the format and the verification alone (lockdown_server has no Qt)
    code = (
        "import sys, lockdown.upload.format, lockdown.upload.verify\n"
        "print(sorted(m for m in sys.modules if m.startswith("
        "('lockdown.capture', 'lockdown.upload.spool', 'PySide6', 'cv2', 'av'))))"
    )
    assert _in_a_fresh_interpreter(code) == "[]"


def test_asking_whether_a_camera_source_is_a_camera_imports_no_device_library() -> None:
    """The start asks on the GUI thread (before the page loads): OpenCV and PyAV cost it
    about 175 ms there; the recording imports them beside it instead."""
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "from lockdown.config.settings import Organisation, layer\n"
        "from lockdown.ui.checkscreen import SystemCheckOperation\n"
        "org = Organisation(values={'checks.before_exam': False})\n"
        "settings = layer(org, {'proctoring.camera': True, 'proctoring.camera_source': 'pattern'})\n"
        "check = SystemCheckOperation(settings, Path('.'), print)\n"
        "assert check.passes_without_asking() is True, 'the check screen would show'\n"
        "print(sorted({'cv2', 'av', 'numpy'} & set(sys.modules)))\n"
    )
    assert _in_a_fresh_interpreter(probe) == "[]"
