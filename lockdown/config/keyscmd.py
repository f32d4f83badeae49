"""``lockdown config keys FILE``: a ``.seb`` or Lockdown configuration's exam keys, and the
password sources of the commands that open an encrypted ``.seb``.

Apart from :mod:`lockdown.config.examkeys` (the key algorithms), so the key algorithms
never import the ``.seb`` reader that uses them.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Final

from lockdown import log
from lockdown.build import current as current_build
from lockdown.config.examkeys import ExamKeys, config_key, exam_keys, isolation_modes
from lockdown.config.settings import ConfigError, Organisation, layer

MAX_PASSWORD_FILE_BYTES: Final = 64 * 1024


def read_password_file(spec: str) -> str:
    """The password in the first line of file ``spec``, or of standard input for ``-``.

    The line ends at the first line break (``\n`` or ``\r\n``), which is not part of the
    password; everything else is, spaces included. Every failure is one line.
    """
    origin = "standard input" if spec == "-" else spec
    try:
        if spec == "-":
            line = sys.stdin.readline(MAX_PASSWORD_FILE_BYTES)
        else:
            with open(spec, encoding="utf-8", newline="") as fh:
                line = fh.readline(MAX_PASSWORD_FILE_BYTES)
    except FileNotFoundError:
        raise ConfigError(f"{origin}: password file not found; check the path") from None
    except IsADirectoryError:
        raise ConfigError(f"{origin}: is a folder, expected a password file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{origin}: the password file is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{origin}: cannot read the password file ({exc.strerror})") from None
    password = line.removesuffix("\n").removesuffix("\r")
    if not password:
        raise ConfigError(
            f"{origin}: the password file is empty; put the password on its first line"
        )
    log.register_secret(password)
    return password


def _password_source(
    given: str | None, origin: str, *, password_file: str | None = None
) -> Callable[[int], str | None]:
    """Where a ``.seb`` password comes from: ``--password``, ``--password-file`` or the terminal.

    A file is read only when the ``.seb`` file asks for a password, once; a given
    password is tried once; the terminal is asked up to three times.
    """
    read: list[str] = []

    def ask(attempt: int) -> str | None:
        if password_file is not None:
            if attempt > 1:
                return None
            if not read:
                read.append(read_password_file(password_file))
            return read[0]
        if given is not None:
            return given if attempt == 1 else None
        if not sys.stdin.isatty():
            raise ConfigError(
                f"{origin}: the file is password-protected and there is no terminal to ask "
                "on; pass --password-file FILE (or - for standard input)"
            )
        try:
            return getpass.getpass(f"Password for {origin} (try {attempt} of 3): ")
        except EOFError:
            return None

    return ask


def password_source_for(args: argparse.Namespace, origin: str) -> Callable[[int], str | None]:
    """The password source of a command with ``--password`` / ``--password-file``."""
    return _password_source(
        getattr(args, "password", None),
        origin,
        password_file=getattr(args, "password_file", None),
    )


def keys_for_file(
    path: Path,
    *,
    password: Callable[[int], str | None],
    organisation: Organisation | None = None,
) -> list[ExamKeys]:
    """Keys of a ``.seb`` file or a Lockdown exam configuration, one per isolation mode.

    The Browser Exam Keys are those of this build with ``organisation`` (the defaults
    when None) layered under the file's options.
    """
    from lockdown.config import examfile, seb

    org = organisation if organisation is not None else Organisation()
    data = examfile.read_file(path)
    origin = str(path)
    if path.suffix.lower() == ".seb" or seb.looks_like_seb(data):
        cfg = seb.load_seb(data, origin=origin, password=password)
        config, values = cfg.config_key, cfg.values
    else:
        body, _ = examfile.split_signature(data)
        _, values = examfile.parse_body(body, origin=origin)
        config = config_key(values)
    settings = layer(org, values)
    try:
        return [exam_keys(config, settings, mode=mode) for mode in isolation_modes(settings)]
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from None


def main_keys(args: argparse.Namespace) -> int:
    """``lockdown config keys FILE``: the Config Key, then one Browser Exam Key per mode.

    Each Browser Exam Key is labelled with the isolation mode and the build it belongs
    to: an exam server should accept each of them for this organisation file.
    """
    from lockdown.config.settings import choose_organisation

    path = Path(args.file)
    organisation = choose_organisation(getattr(args, "organisation", None))
    all_keys = keys_for_file(
        path, password=password_source_for(args, str(path)), organisation=organisation
    )
    this = current_build()
    print(f"Config Key: {all_keys[0].config_key}")
    for keys in all_keys:
        print(
            f"Browser Exam Key ({keys.mode} display, {this.kind} build "
            f"{this.identity[:12]}): {keys.browser_exam_key}"
        )
    return 0
