"""The build's kind and identity: installed only when frozen or tightened, never loosened."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lockdown import __version__, build

ROOT = Path(__file__).resolve().parents[2]


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


def test_tree_identity_covers_paths_and_contents_of_shipped_files(tmp_path: Path) -> None:
    files = {"pkg/__init__.py": b"x = 1\n", "pkg/sub/mod.py": b"y = 2\n", "res/a.js": b"1"}
    first = build.tree_identity(_tree(tmp_path / "a", files))
    assert first == build.tree_identity(_tree(tmp_path / "b", files))
    assert first is not None and len(first) == 64
    noise = {**files, "pkg/__pycache__/mod.cpython-311.py": b"junk", "pkg/x.pyc": b"z"}
    assert build.tree_identity(_tree(tmp_path / "c", noise)) == first
    for changed in (
        {**files, "pkg/sub/mod.py": b"y = 3\n"},
        {**files, "res/a.js": b"2"},  # the injected JavaScript counts too
        {"pkg/__init__.py": b"x = 1\n", "pkg/other/mod.py": b"y = 2\n", "res/a.js": b"1"},
    ):
        assert build.tree_identity(_tree(tmp_path / f"d{len(str(changed))}", changed)) != first


def test_a_source_checkout_is_a_development_build_unless_tightened() -> None:
    dev = build.detect({})
    assert dev.kind == "development" and not dev.installed
    assert dev.identity == build.compute_identity()
    tightened = build.detect({build.AS_INSTALLED_VARIABLE: "1"})
    assert tightened.installed and tightened.identity == dev.identity
    assert build.detect({build.AS_INSTALLED_VARIABLE: "0"}).kind == "development"


def _frozen_detect(tmp_path: Path, info: object | None, env: dict[str, str]) -> build.Build:
    exe = tmp_path / "lockdown"
    exe.write_bytes(b"")
    if info is not None:
        (tmp_path / build.BUILD_INFO_FILE).write_text(json.dumps(info))
    mp = pytest.MonkeyPatch()
    try:
        mp.setattr(sys, "frozen", True, raising=False)
        mp.setattr(sys, "executable", str(exe))
        return build.detect(env)
    finally:
        mp.undo()


def test_a_frozen_bundle_is_installed_whatever_the_environment_says(tmp_path: Path) -> None:
    info = {"version": "9.9", "identity": "ab" * 32, "built": "2026-12-01"}
    found = _frozen_detect(tmp_path, info, {build.AS_INSTALLED_VARIABLE: "0"})
    assert found == build.Build("installed", "9.9", "ab" * 32, "frozen bundle")


@pytest.mark.parametrize("info", [None, {"version": "1", "identity": "short"}, ["x"]])
def test_a_frozen_bundle_without_valid_build_info_is_still_installed(
    tmp_path: Path, info: object
) -> None:
    found = _frozen_detect(tmp_path, info, {})
    assert found.installed and found.identity != build.compute_identity()


def test_build_info_written_by_packaging_is_read_back(tmp_path: Path) -> None:
    path = build.write_build_info(tmp_path, built="2026-12-01T00:00:00Z")
    assert build.read_build_info(path.parent) == {
        "version": __version__,
        "identity": build.compute_identity(),
        "built": "2026-12-01T00:00:00Z",
    }


def test_development_switches_are_read_only_in_a_development_build(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {"LOCKDOWN_DEV_KEEP_WEBRTC": "1"}
    assert build.dev_switch("keep_webrtc", env) == "1"
    build.current.cache_clear()
    monkeypatch.setenv(build.AS_INSTALLED_VARIABLE, "1")
    try:
        assert build.dev_switch("keep_webrtc", env) is None
    finally:
        build.current.cache_clear()


def test_version_prints_the_build_identity() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lockdown", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=ROOT,
    )
    identity = build.compute_identity()
    assert done.stdout.strip().startswith(
        f"lockdown {__version__} (development build {identity[:16]}"
    )


def test_the_identity_covers_the_shipped_resources_exactly_once() -> None:
    from lockdown import resources

    shipped = resources.shipped_dir()
    assert shipped.is_relative_to(build.PACKAGE_ROOT)
    assert (shipped / "js" / "guard.js").is_file()
    package = build.tree_identity(build.PACKAGE_ROOT)
    assert build.compute_identity() == hashlib.sha256(f"package:{package}\n".encode()).hexdigest()
