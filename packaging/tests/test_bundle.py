"""Smoke test of the frozen bundle (``make package-test``, after ``make package``), as
qutebrowser tests its builds: the bundle is an installed build of this tree, holds the web
engine's process, resources and locales and our data files but no unused Qt, reads only
its own data files, runs ``lockdown demo`` headless to its end with nothing unexpected on
stderr, and answers ``lockdown check --json``.

Not part of ``make test``: it needs the bundle, which ``make package`` builds once per CI
run. ``LOCKDOWN_TEST_BUNDLE`` points at another bundle folder.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from lockdown import __version__, build
from tests.support import smoke

pytestmark = [pytest.mark.slow, pytest.mark.webengine]

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = Path(os.environ.get("LOCKDOWN_TEST_BUNDLE", ROOT / "dist" / "lockdown"))
EXECUTABLE = BUNDLE / "lockdown"
QT = BUNDLE / "_internal" / "PySide6" / "Qt"


@pytest.fixture(scope="module", autouse=True)
def _bundle_is_built() -> None:
    if not EXECUTABLE.is_file():
        pytest.fail(f"no bundle at {BUNDLE}: run `make package` first", pytrace=False)


def test_the_bundle_is_an_installed_build_of_this_tree(tmp_path: Path) -> None:
    info = json.loads((BUNDLE / build.BUILD_INFO_FILE).read_text(encoding="utf-8"))
    assert info["version"] == __version__
    assert info["identity"] == build.compute_identity(), "stale bundle: run `make package`"
    result = smoke.run([str(EXECUTABLE), "--version"], tmp_path, timeout=60)
    assert result.code == 0, result.stderr
    assert result.stdout.strip() == (
        f"lockdown {__version__} (installed build {info['identity'][:16]}; frozen bundle)"
    )


def test_the_bundle_holds_the_web_engine_and_our_data_but_no_unused_qt() -> None:
    for part in (
        "libexec/QtWebEngineProcess",
        "resources/qtwebengine_resources.pak",
        "resources/icudtl.dat",
        "translations/qtwebengine_locales/en-US.pak",
        "translations/qtwebengine_locales/de.pak",
        "plugins/platforms/libqxcb.so",
    ):
        assert (QT / part).is_file(), part
    shipped = ROOT / "lockdown" / "resources"
    data = sorted(
        p.relative_to(shipped) for p in shipped.rglob("*") if p.is_file() and p.suffix != ".py"
    )
    data = [p for p in data if "__pycache__" not in p.parts]
    bundled = BUNDLE / "_internal" / "lockdown" / "resources"
    assert data and all((bundled / p).read_bytes() == (shipped / p).read_bytes() for p in data)
    assert not (QT / "qml").exists()
    assert not list((QT / "lib").glob("libQt6Quick3D*"))
    assert not list((QT / "lib").glob("libQt6Pdf*"))
    assert not (BUNDLE / "_internal" / "lockdown_server").exists()


def test_the_bundle_lists_its_environment_from_its_own_data_whatever_the_variables_say(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "my-resources"
    empty.mkdir()
    override = {"LOCKDOWN_RESOURCES": str(empty)}
    org = tmp_path / "organisation.toml"  # this test machine is a virtual machine
    org.write_text(
        '[settings]\nguards.virtual_machine = "allow"\nguards.remote_session = "allow"\n'
    )
    result = smoke.run(
        [str(EXECUTABLE), "environment", "--organisation", str(org)], tmp_path, extra_env=override
    )
    assert result.code == 0, result.stderr
    assert "Prohibited apps running:" in result.stdout
    # positive control: a development build (this tree) reads the candidate's folder
    source = smoke.run(
        [sys.executable, "-m", "lockdown", "environment"],
        tmp_path,
        extra_env={**override, "PYTHONPATH": str(ROOT)},
    )
    assert source.code == 2
    assert "prohibited-apps list not found" in source.stderr


def test_the_bundle_runs_the_demo_headless_to_its_end(tmp_path: Path) -> None:
    shots = tmp_path / "shots"
    result = smoke.run(
        [str(EXECUTABLE), "--json-logging", "--temp-basedir", "demo", "--screenshots", str(shots)],
        tmp_path,
    )
    smoke.assert_demo_went_through(result, shots)


def test_the_bundle_answers_check_json(tmp_path: Path) -> None:
    result = smoke.run([str(EXECUTABLE), "check", "--json"], tmp_path, timeout=120)
    smoke.assert_check_answers(result)


def test_the_display_helper_is_the_bundles_second_executable(tmp_path: Path) -> None:
    helper = BUNDLE / "lockdown-display-helper"
    assert helper.is_file() and os.access(helper, os.X_OK)
    # it takes no arguments (it runs as root): one JSON line says so, exit 2
    result = smoke.run([str(helper), "--modulepath", "/tmp"], tmp_path, timeout=60)
    assert result.code == 2
    assert json.loads(result.stdout) == {
        "event": "failed",
        "reason": "lockdown-display-helper takes no arguments",
    }
    # and the session the display manager starts is a command of the bundle
    result = smoke.run([str(EXECUTABLE), "session", "--help"], tmp_path, timeout=60)
    assert result.code == 0 and "lockdown session" in result.stdout
