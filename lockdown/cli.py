"""The ``lockdown`` command: argument parsing and dispatch to the packages that do the work.

Exit codes: 0 success, 1 a check or verification found a problem, 2 a usage or
configuration error (one line on stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from lockdown import log, paths
from lockdown.errors import UserError

Handler = Callable[[argparse.Namespace], int]


def _paths(args: argparse.Namespace) -> paths.Paths:
    if args.temp_basedir:
        base = Path(tempfile.mkdtemp(prefix="lockdown-"))
        log.init.info("Using temporary base dir %s", base)
        return paths.temp_paths(base)
    return paths.default_paths()


def _refuse_overrides(args: argparse.Namespace) -> list[object]:
    """Refuse test overrides for the commands that run an exam in an installed build.

    A refusal is journalled in the user's own data folder (never a temporary one).
    """
    import os

    from lockdown import overrides
    from lockdown.events import record_refusal

    if args.command not in ("open", "demo"):
        return []
    try:
        found = overrides.check(args, os.environ, allow_temp_basedir=args.command == "demo")
    except overrides.OverrideRefused as exc:
        record_refusal(paths.default_paths(), getattr(args, "target", "demo"), exc)
        raise
    return list(found)


def _organisation(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from lockdown.config.settings import choose_organisation

    return choose_organisation(args.organisation)


# -- settings / config / keys -------------------------------------------------------------


def cmd_settings(args: argparse.Namespace) -> int:
    from lockdown.config.docgen import render

    sys.stdout.write(render())
    return 0


def cmd_config_validate(args: argparse.Namespace) -> int:
    from lockdown.config import examfile, keys
    from lockdown.config.settings import layer

    org = _organisation(args)
    trusted = None
    if args.pubkey:
        text = (
            Path(args.pubkey).read_text(encoding="ascii").strip()
            if Path(args.pubkey).is_file()
            else args.pubkey
        )
        keys.parse_public(text)
        trusted = (*org.trusted_keys, text)
    config = examfile.load_file(Path(args.file), org, trusted_keys=trusted)
    settings = layer(org, config.values)
    who = (
        f"signed by {config.signed_by}"
        if config.signed_by
        else "unsigned (allowed by the organisation)"
    )
    print(f"{args.file}: valid, {who}; {len(config.values)} options set")
    for key in settings.ignored:
        print(f"  ignored {key}: locked by the organisation")
    return 0


def cmd_config_sign(args: argparse.Namespace) -> int:
    from lockdown.config import examfile, keys

    key = keys.load_private(Path(args.key))
    source = Path(args.file)
    data = examfile.read_file(source)
    examfile.parse_body(examfile.split_signature(data)[0], origin=str(source))
    signed = examfile.sign(data, key)
    out = Path(args.out) if args.out else source
    try:
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_bytes(signed)
        tmp.replace(out)
    except OSError as exc:
        raise UserError(f"{out}: cannot write the signed file ({exc.strerror})") from None
    print(f"{out}: signed with {keys.public_text(key.public_key())}")
    return 0


def cmd_keys_generate(args: argparse.Namespace) -> int:
    from lockdown.config import keys

    pair = keys.generate(Path(args.out))
    print(f"private key: {pair.private_path} (keep it secret)")
    print(f"public key:  {pair.public_path}")
    print(pair.public)
    return 0


def cmd_journal_verify(args: argparse.Namespace) -> int:
    from lockdown import events

    report = events.verify(Path(args.file))
    if args.json:
        print(
            json.dumps(
                {
                    "ok": True,
                    "records": report.records,
                    "first": report.first_utc,
                    "last": report.last_utc,
                }
            )
        )
    else:
        span = f", {report.first_utc} to {report.last_utc}" if report.records else ""
        print(f"{args.file}: intact, {report.records} records{span}")
    return 0


def _not_yet(name: str) -> int:
    print(f"lockdown {name}: not available yet in this version", file=sys.stderr)
    return 2


def _dispatch(module: str, function: str, name: str) -> Handler:
    """A handler that imports its implementation only when the command runs."""

    def handler(args: argparse.Namespace) -> int:
        import importlib

        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                return _not_yet(name)
            raise
        fn = getattr(mod, function, None)
        if fn is None:
            return _not_yet(name)
        result: int = fn(args)
        return result

    return handler


class _VersionAction(argparse.Action):
    """``--version``: the version, the kind of build and its identity (computed on use)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help=str(kwargs.get("help", "")))

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        from lockdown import build

        print(build.current().describe())
        parser.exit()


UNTRUSTED_ARGS = "--untrusted-args"


def untrusted_argv(argv: Sequence[str]) -> list[str]:
    """The command line of a link the OS handed over: ``--untrusted-args URL``.

    The desktop registers ``lockdown --untrusted-args %u``; a crafted link must not be
    able to add options (qutebrowser's CVE-2021-41146), so exactly one argument follows
    the guard and it must not start with ``-``. Only ``--json-logging`` and ``--debug``
    may stand before it.

    Raises:
        UserError: anything else on the command line.
    """
    index = list(argv).index(UNTRUSTED_ARGS)
    before, after = argv[:index], argv[index + 1 :]
    if any(a not in ("--json-logging", "--debug") for a in before):
        raise UserError(f"{UNTRUSTED_ARGS} must come before the link and after no command")
    if len(after) != 1:
        raise UserError(
            f"{UNTRUSTED_ARGS} takes exactly one link, got {len(after)} arguments; "
            "open the exam link again"
        )
    if after[0].startswith("-"):
        raise UserError(
            f"refused {after[0][:80]!r} after {UNTRUSTED_ARGS}: a link cannot start with "
            "'-'; open the exam link again"
        )
    return [*before, "open", after[0]]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lockdown",
        description="Lockdown exam browser: take exams locked down, with proctoring and a system check.",
    )
    parser.add_argument(
        "--version", action=_VersionAction, help="print the version and build identity"
    )
    parser.add_argument(
        "--json-logging", action="store_true", help="log as JSON lines (for machines)"
    )
    parser.add_argument("--debug", action="store_true", help="log debug messages")
    parser.add_argument(
        "--temp-basedir",
        action="store_true",
        help="keep all data in a new temporary folder (tests)",
    )
    parser.add_argument(
        "--organisation", metavar="FILE", help="organisation file instead of the system one"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "open", help="open an exam: a config file, an https:// URL or a lockdown:// / seb:// link"
    )
    p.add_argument("target")
    p.set_defaults(func=_dispatch("lockdown.app", "main_open", "open"))

    p = sub.add_parser("demo", help="open the bundled demo exam")
    p.add_argument("--screenshots", metavar="DIR", help="save screenshots of the demo journey here")
    p.set_defaults(func=_dispatch("lockdown.app", "main_demo", "demo"))

    p = sub.add_parser("settings", help="print the settings reference")
    p.set_defaults(func=cmd_settings)

    config = sub.add_parser("config", help="exam configuration files").add_subparsers(
        dest="config_command", metavar="ACTION", required=True
    )
    p = config.add_parser(
        "validate", help="check an exam configuration file (signature, schema, validity)"
    )
    p.add_argument("file")
    p.add_argument("--pubkey", help="also trust this public key (file or ed25519:… text)")
    p.set_defaults(func=cmd_config_validate)
    p = config.add_parser("sign", help="sign an exam configuration file")
    p.add_argument("file")
    p.add_argument(
        "--key", required=True, metavar="KEYFILE", help="private key from `lockdown keys generate`"
    )
    p.add_argument("--out", help="write the signed file here instead of in place")
    p.set_defaults(func=cmd_config_sign)
    p = config.add_parser(
        "keys", help="print the Config Key and Browser Exam Key of a .seb or Lockdown config"
    )
    p.add_argument("file")
    p.add_argument("--password", help="password of an encrypted .seb file (asked when missing)")
    p.set_defaults(func=_dispatch("lockdown.config.examkeys", "main_keys", "config keys"))

    keys_ = sub.add_parser("keys", help="signing keys").add_subparsers(
        dest="keys_command", metavar="ACTION", required=True
    )
    p = keys_.add_parser(
        "generate", help="make an Ed25519 key pair for signing exam configurations"
    )
    p.add_argument(
        "--out", default="lockdown-signing", help="file name prefix (default: lockdown-signing)"
    )
    p.set_defaults(func=cmd_keys_generate)

    journal = sub.add_parser("journal", help="session journals").add_subparsers(
        dest="journal_command", metavar="ACTION", required=True
    )
    p = journal.add_parser("verify", help="check a journal's hash chain")
    p.add_argument("file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_journal_verify)

    p = sub.add_parser(
        "environment", help="what the guards see on this machine (for support staff)"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_dispatch("lockdown.guards.environment", "main", "environment"))

    p = sub.add_parser("record", help="make a short test recording with the configured sources")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument(
        "--config", metavar="FILE", help="exam configuration whose proctoring settings to use"
    )
    p.set_defaults(func=_dispatch("lockdown.capture.cli", "main_record", "record"))

    spool = sub.add_parser("spool", help="recording spools").add_subparsers(
        dest="spool_command", metavar="ACTION", required=True
    )
    p = spool.add_parser("verify", help="check every segment of a spool and summarise it")
    p.add_argument("dir")
    p.add_argument(
        "--key", metavar="FILE", help="the spool's key file, when it is not where spool.json says"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_dispatch("lockdown.upload.cli", "main_spool_verify", "spool verify"))

    p = sub.add_parser("check", help="run the system check and print the report")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_dispatch("lockdown.checks.cli", "main", "check"))
    return parser


#: Commands that log their progress at INFO; the rest only warn.
_CHATTY = frozenset({"open", "demo", "record"})


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if UNTRUSTED_ARGS in arguments:
        try:
            arguments = untrusted_argv(arguments)
        except UserError as exc:
            print(f"lockdown: {exc}", file=sys.stderr)
            return exc.exit_code
    parser = build_parser()
    args = parser.parse_args(arguments)
    level = logging.INFO if args.command in _CHATTY else logging.WARNING
    log.setup(json_logging=args.json_logging, level=logging.DEBUG if args.debug else level)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        args.overrides = _refuse_overrides(args)
        args.paths = _paths(args)
        code: int = args.func(args)
    except UserError as exc:
        print(f"lockdown: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("lockdown: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
