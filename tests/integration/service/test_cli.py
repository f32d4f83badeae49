"""``lockdown-server`` on the command line: TLS required off loopback, TLS served on
loopback, exams and candidates from the real command, and one clear line for a mistake."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from lockdown.config import examfile
from lockdown.config.settings import Organisation
from tests.support.service import ServiceProcess, run_cli

Factory = Callable[..., ServiceProcess]


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0, done.stderr
    return done.stderr


def test_serving_off_loopback_without_tls_is_refused(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    message = _one_line(run_cli("serve", "--data", data, "--host", "0.0.0.0", check=False))
    assert "without TLS" in message and "--behind-proxy" in message
    message = _one_line(run_cli("serve", "--data", data, "--tls-cert", "c.pem", check=False))
    assert "--tls-key" in message


def test_the_service_serves_tls_on_loopback(
    service_factory: Factory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    service = service_factory(extra=("--tls-cert", str(cert), "--tls-key", str(key)), ca=cert)
    assert requests.get(service.url + "/healthz", verify=str(cert), timeout=10).status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{service.port}/healthz", timeout=5)
    data = str(service.data)
    assert (
        _main(capsys, "exam", "create", "--data", data, "--id", "tls", "--title", "TLS").returncode
        == 0
    )
    link = _main(capsys, "candidates", "add", "--data", data, "--exam", "tls", "--id", "u1")
    assert link.stdout.startswith(f"lockdowns://127.0.0.1:{service.port}/launch?token=")


def test_exam_create_and_candidates_add_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(tmp_path / "data")
    url = "http://127.0.0.1:9/"
    done = run_cli(  # the real command, in a process of its own
        "exam",
        "create",
        "--data",
        data,
        "--title",
        "Physics final",
        "--streams",
        "camera",
        "--start",
        "2026-01-01T08:00:00Z",
        "--end",
        "2099-01-01T12:00:00+02:00",
        "--start-url",
        "https://exam.example.org/",
        "--url",
        url,
    )
    assert "config.trusted_keys" in done.stderr
    public = (tmp_path / "data" / "keys" / "token.pub").read_text().strip()
    config = examfile.load_bytes(
        done.stdout.encode(), Organisation(values={"config.trusted_keys": (public,)}), origin="cli"
    )
    assert config.meta.id == "physics-final" and config.values["proctoring.camera"] is True
    assert config.values["browser.start_url"] == "https://exam.example.org/"
    people = tmp_path / "people.csv"
    people.write_text('# id,group,name\nu1,A,Ada Lovelace\nu2,B,"Hopper, Grace"\n')
    links = _main(
        capsys,
        "candidates",
        "add",
        "--data",
        data,
        "--exam",
        "physics-final",
        "--csv",
        str(people),
        "--url",
        url,
    )
    lines = links.stdout.splitlines()
    assert len(lines) == 2 and all(
        line.startswith("lockdown://127.0.0.1:9/launch?token=") for line in lines
    )
    listed = _main(capsys, "exam", "list", "--data", data).stdout
    assert listed.startswith("physics-final\tPhysics final\tcamera")
    for path in ("token.key", "recipient.key"):
        assert (tmp_path / "data" / "keys" / path).stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["exam", "create", "--title", "T", "--start", "tomorrow", "--url", "http://127.0.0.1/"],
            "--start",
        ),
        (
            [
                "exam",
                "create",
                "--title",
                "T",
                "--streams",
                "camera,smell",
                "--url",
                "http://127.0.0.1/",
            ],
            "smell",
        ),
        (["exam", "create", "--title", "T", "--url", "http://exam.example.org/"], "https"),
        (["exam", "create", "--title", "T"], "--url"),
        (
            ["candidates", "add", "--exam", "nope", "--id", "u1", "--url", "http://127.0.0.1/"],
            "no exam",
        ),
        (["candidates", "add", "--exam", "nope"], "--id"),
        (["exam", "list", "--database-url", "mysql://u@127.0.0.1/x"], "not supported"),
        (["exam", "list", "--database-url", "postgresql://u@127.0.0.1:1/x"], "cannot open"),
        (["exam", "list", "--s3-endpoint", "http://127.0.0.1:1"], "--s3-bucket"),
    ],
)
def test_a_mistake_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    command, sub, *rest = args
    message = _one_line(_main(capsys, command, sub, "--data", str(tmp_path / "data"), *rest))
    assert expected in message


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    """The command's own ``main`` in this process (the same code, without a start-up)."""
    from lockdown_server import cli

    code = cli.main(list(args))
    out = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, out.out, out.err)


def test_a_private_key_others_can_read_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    assert _main(capsys, "exam", "list", "--data", str(data)).returncode == 0
    os.chmod(data / "keys" / "recipient.key", 0o644)
    message = _one_line(_main(capsys, "exam", "list", "--data", str(data)))
    assert "chmod 600" in message
