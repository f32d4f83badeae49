"""A plain wheel carries everything it needs: built from this tree, installed with
``--no-deps`` into a fresh venv that borrows the project's dependencies (no re-download
of PySide6), its ``lockdown environment`` and headless ``lockdown demo`` work.

Before the data files moved into the package, such a wheel said "prohibited-apps list not
found" and "bundled file missing": the wheel is the only place that shows it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import smoke

pytestmark = [pytest.mark.slow, pytest.mark.webengine]

ROOT = Path(__file__).resolve().parents[2]


def _isolated() -> dict[str, str]:
    """Our environment without PYTHONPATH, which would put the checkout before the wheel."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A venv with only the wheel of this tree installed, its dependencies from ours."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "src"  # a copy, so the build writes nothing into the checkout
    shutil.copytree(
        ROOT / "lockdown", source / "lockdown", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(base / "dist"),
            str(source),
        ],
        check=True,
        timeout=240,
        env=_isolated(),
        cwd=base,
    )
    (wheel,) = (base / "dist").glob("lockdown-*.whl")
    venv = base / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60
    )
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # Install before our packages are visible: pip must neither see our (editable)
    # lockdown as "already satisfied" nor ever touch our environment.
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"),
            *("--no-deps", "--no-index", str(wheel)),
        ],
        check=True,
        timeout=120,
        env=_isolated(),
    )
    # A bare path in a .pth: our site-packages come after the venv's own, and the .pth
    # files in ours (the editable install of the checkout) are not processed.
    ours = sysconfig.get_paths()["purelib"]
    (Path(purelib) / "lockdown-test-dependencies.pth").write_text(ours + "\n")
    yield venv


def _data_files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc")
    }


def test_the_wheel_is_what_runs_and_all_its_data_files_are_inside(wheel_venv: Path) -> None:
    done = subprocess.run(
        [
            str(wheel_venv / "bin" / "python"),
            "-c",
            "from lockdown import resources; print(resources.shipped_dir())",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=wheel_venv,
        env=_isolated(),
    )
    installed = Path(done.stdout.strip())
    assert installed.is_relative_to(wheel_venv)
    shipped = _data_files(ROOT / "lockdown" / "resources")
    assert "js/guard.js" in shipped and "prohibited_apps.toml" in shipped
    assert _data_files(installed) == shipped


def test_environment_from_the_wheel_lists_the_guards_and_the_apps(
    wheel_venv: Path, tmp_path: Path
) -> None:
    org = tmp_path / "organisation.toml"  # this test machine is a virtual machine
    org.write_text(
        '[settings]\nguards.virtual_machine = "allow"\nguards.remote_session = "allow"\n'
    )
    result = smoke.run(
        [str(wheel_venv / "bin" / "lockdown"), "environment", "--organisation", str(org)],
        tmp_path,
    )
    assert result.code == 0, result.stderr
    assert "prohibited_apps" in result.stdout
    assert "Prohibited apps running:" in result.stdout
    assert "not found" not in result.stdout + result.stderr


def test_demo_from_the_wheel_runs_headless_to_its_end(wheel_venv: Path, tmp_path: Path) -> None:
    shots = tmp_path / "shots"
    result = smoke.run(
        [
            str(wheel_venv / "bin" / "lockdown"),
            "--json-logging",
            "--temp-basedir",
            "demo",
            "--screenshots",
            str(shots),
        ],
        tmp_path,
    )
    smoke.assert_demo_went_through(result, shots)
