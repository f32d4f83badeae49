"""The Linux files the package installs agree with each other and with the code: the
exam session's desktop file runs the real ``lockdown session``, the polkit action names
the helper where the bundle puts it, and the docs say where each file goes."""

from __future__ import annotations

import argparse
import ast
import configparser
import importlib
import inspect
import shlex
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from lockdown import cli
from lockdown.platform import exam_display

ROOT = Path(__file__).resolve().parents[2]
LINUX = ROOT / "packaging" / "linux"


def _spec_constants() -> dict[str, Any]:
    """The literal module-level constants of packaging/lockdown.spec (it cannot be
    imported outside PyInstaller)."""
    tree = ast.parse((ROOT / "packaging" / "lockdown.spec").read_text(encoding="utf-8"))
    found: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                found[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return found


def _desktop_entry() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, comment_prefixes=("#",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string((LINUX / "lockdown-exam.desktop").read_text(encoding="utf-8"))
    return parser["Desktop Entry"]


def test_the_session_desktop_file_runs_lockdown_session() -> None:
    entry = _desktop_entry()
    assert entry["Type"] == "Application"
    assert entry["Name"] and entry["Comment"]
    argv = shlex.split(entry["Exec"])
    assert argv == ["lockdown", "session"]
    assert entry["TryExec"] == argv[0]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    assert scripts[argv[0]] == "lockdown.cli:main"
    # the command line the display manager runs reaches the session's own code
    args = cli.build_parser().parse_args(argv[1:])
    assert args.command == "session"
    target = inspect.getclosurevars(args.func).nonlocals
    function = getattr(importlib.import_module(target["module"]), target["function"])
    assert function.__module__ == "lockdown.xsession" and function.__name__ == "main_session"


def test_the_session_command_is_not_a_stub() -> None:
    # the positive control of the check above: an unknown command does not parse
    parser = cli.build_parser()
    try:
        parser.parse_args(["sessions"])
    except SystemExit as exc:
        assert exc.code == 2
    else:
        raise AssertionError("`lockdown sessions` parsed")
    assert isinstance(parser.parse_args(["session"]), argparse.Namespace)


def test_the_polkit_action_names_the_helper_where_the_bundle_installs_it() -> None:
    spec = _spec_constants()
    helper = Path(spec["BUNDLE_DIR"]) / spec["HELPER_NAME"]
    assert helper == exam_display.HELPER_PATH
    root = ET.parse(LINUX / "org.lockdown.display-helper.policy").getroot()
    action = root.find("action")
    assert action is not None and action.get("id") == "org.lockdown.display-helper"
    annotations = {a.get("key"): a.text for a in action.findall("annotate")}
    assert annotations["org.freedesktop.policykit.exec.path"] == str(helper)
    defaults = action.find("defaults")
    assert defaults is not None
    assert [defaults.findtext(k) for k in ("allow_any", "allow_inactive", "allow_active")] == [
        "no",
        "no",
        "yes",
    ]
    # the spec builds the helper under that name (the second executable of the bundle)
    text = (ROOT / "packaging" / "lockdown.spec").read_text(encoding="utf-8")
    assert "name=HELPER_NAME" in text
    entry = (ROOT / "packaging" / "display_helper_entry.py").read_text(encoding="utf-8")
    assert "from lockdown.platform.display_helper import main" in entry


def test_every_linux_file_is_installed_where_the_code_looks_and_documented() -> None:
    spec = _spec_constants()
    files: dict[str, str] = spec["LINUX_FILES"]
    assert sorted(files) == sorted(p.name for p in LINUX.iterdir())
    installed = {name: Path(folder) / name for name, folder in files.items()}
    assert installed["org.lockdown.display-helper.policy"] == exam_display.POLKIT_ACTION
    assert installed["lockdown-exam.desktop"] == exam_display.XSESSION_FILE
    for doc in ("packaging.md", "display-isolation.md"):
        body = (ROOT / "docs" / doc).read_text(encoding="utf-8")
        for path in [*installed.values(), exam_display.HELPER_PATH]:
            assert str(path) in body, f"docs/{doc} does not say where {path.name} goes"
