"""The ``lockdown`` command: argument parsing and dispatch to the packages that do the work.

Exit codes: 0 success, 1 a check or verification found a problem, 2 a usage or
configuration error (one line on stderr, never a traceback; with ``--json`` also a JSON
object ``{"ok": false, "error": …}`` on stdout), 141 when the reader of our output went
away (``lockdown config keys F | head -1``: quiet, like a tool stopped by SIGPIPE).

The global options (``--debug``, ``--json-logging``, …) are accepted before or after the
command; every command and argument has a help text and every command an example
(:data:`EXAMPLES`, checked by a test).
"""

from __future__ import annotations

import argparse
import copy
import errno
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

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

    if args.command not in ("open", "demo", "session"):
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


def _plain(value: object) -> object:
    """A validated (frozen) option value as plain JSON-able data."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | frozenset):
        return [_plain(v) for v in value]
    return value


def _validate_seb(args: argparse.Namespace, org: Any, data: bytes) -> int:
    """``config validate`` of a ``.seb`` file: what it maps onto our options, what it ignores."""
    from lockdown.config import keyscmd, seb
    from lockdown.config.settings import layer

    origin = str(args.file)
    seb.check_allowed(org, origin=origin)
    cfg = seb.load_seb(data, origin=origin, password=keyscmd.password_source_for(args, origin))
    settings = layer(org, cfg.values)
    by_option = {ours: theirs for theirs, (ours, _) in seb.MAPPED.items()}
    print(
        f"{origin}: valid Safe Exam Browser configuration; Config Key {cfg.config_key}; "
        f"{len(cfg.values)} settings mapped, {len(cfg.ignored)} ignored"
    )
    for key in sorted(cfg.values):
        value = json.dumps(_plain(cfg.values[key]), default=str, ensure_ascii=False)
        print(f"  mapped  {by_option[key]} -> {key} = {value}")
    for key in settings.ignored:
        print(f"  ignored {key}: locked by the organisation")
    if cfg.ignored:
        print(f"  ignored (no Lockdown counterpart): {', '.join(cfg.ignored)}")
    return 0


def cmd_config_validate(args: argparse.Namespace) -> int:
    from lockdown.config import examfile, keys, seb
    from lockdown.config.settings import layer

    org = _organisation(args)
    data = examfile.read_file(Path(args.file))
    if Path(args.file).suffix.lower() == ".seb" or seb.looks_like_seb(data):
        return _validate_seb(args, org, data)
    trusted = None
    if args.pubkey:
        text = (
            Path(args.pubkey).read_text(encoding="ascii").strip()
            if Path(args.pubkey).is_file()
            else args.pubkey
        )
        keys.parse_public(text)
        trusted = (*org.trusted_keys, text)
    config = examfile.load_bytes(data, org, origin=str(args.file), trusted_keys=trusted)
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

    if args.recipient:
        from lockdown.upload import crypto

        private, public, text = crypto.generate_recipient(Path(args.out))
        print(f"private key: {private} (keep it secret: it opens the recordings)")
        print(f"public key:  {public}")
        print(text)
        return 0
    pair = keys.generate(Path(args.out))
    print(f"private key: {pair.private_path} (keep it secret)")
    print(f"public key:  {pair.public_path}")
    print(pair.public)
    return 0


def cmd_journal_verify(args: argparse.Namespace) -> int:
    """``lockdown journal verify FILE [--key NAME.key]``: what the journal's chains say.

    Without the key the structure is checked (the hash chain, the closing record); with
    the recipient's private key also every record's MAC, which no one without the
    session's key can forge. Exit 0 only for a journal intact and closed.
    """
    from lockdown import events

    path = Path(args.file)
    mac_key = None
    if getattr(args, "key", None):
        from lockdown.upload import crypto

        keys = events.keys_record(path)
        if keys is None or "mac_key" not in keys:
            raise UserError(f"{path}: this journal is not keyed; verify it without --key")
        wrapping = crypto.KeyWrapping.from_json(keys["mac_key"])
        private = crypto.load_recipient_private(Path(args.key))
        mac_key = crypto.unwrap(wrapping, private, label=f"lockdown-journal/{keys.get('chain')}")
    report = events.verify(path, mac_key)
    macs = (
        "MACs checked with the recipient's key"
        if report.macs_checked
        else ("MACs not checked: pass --key" if report.keyed else "not keyed")
    )
    continues = report.continues
    if args.json:
        print(
            json.dumps(
                {
                    "ok": report.closed,
                    "status": report.status,
                    "records": report.records,
                    "first": report.first_utc,
                    "last": report.last_utc,
                    "keyed": report.keyed,
                    "macs_checked": report.macs_checked,
                    "continues": dict(continues) if continues else None,
                }
            )
        )
    else:
        span = f", {report.first_utc} to {report.last_utc}" if report.records else ""
        print(f"{args.file}: {report.status}, {report.records} records{span}; {macs}")
        if continues:
            state = "closed" if continues.get("closed") else "not closed"
            print(
                f"  continues {continues.get('file')} after its record "
                f"{int(continues.get('records', 0)) - 1} ({state}; hash "
                f"{str(continues.get('hash'))[:16]}…)"
            )
        if report.records and not report.closed:
            print(
                "  not closed: the session ended abnormally (a crash, a kill) or its end "
                "was removed"
            )
    return 0 if report.closed else 1


def _not_yet(name: str) -> int:
    raise UserError(f"`lockdown {name}` is not available yet in this version")


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


_JSON_HELP: Final = "print one JSON object for machines (on failures too)"

#: An example for every command (by its words after ``lockdown``), shown in its ``--help``.
EXAMPLES: Final = {
    "": "lockdown open https://exam.example.org/physics.toml",
    "open": "lockdown open lockdowns://exam.example.org/physics.toml",
    "demo": "lockdown demo --screenshots ./demo-shots",
    "session": "lockdown session  (started by the display manager: the Lockdown exam session)",
    "settings": "lockdown settings > settings.md",
    "config": "lockdown config validate exam.toml",
    "config validate": "lockdown config validate exam.seb --password-file - < password.txt",
    "config sign": "lockdown config sign exam.toml --key it-dept.key --out exam-signed.toml",
    "config keys": "lockdown config keys exam.seb --password-file password.txt",
    "keys": "lockdown keys generate --out it-dept",
    "keys generate": "lockdown keys generate --recipient --out it-dept-recipient",
    "journal": "lockdown journal verify session-20260601T080000Z-4242.jsonl",
    "journal verify": "lockdown journal verify session-20260601T080000Z-4242.jsonl "
    "--key it-dept-recipient.key",
    "environment": "lockdown environment --json --organisation /etc/lockdown/organisation.toml",
    "record": "lockdown record --seconds 5 --out ./test-recording",
    "spool": "lockdown spool verify ./test-recording",
    "spool verify": "lockdown spool verify ./test-recording --key it-dept-recipient.key",
    "spool export": "lockdown spool export ./test-recording --key it-dept-recipient.key "
    "--out ./review",
    "check": "lockdown check --config exam.toml --send",
    "upload": "lockdown upload --deadline 600",
}


def _password_options(parser: argparse.ArgumentParser) -> None:
    """``--password-file FILE|-`` (preferred) and ``--password`` for an encrypted ``.seb``."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--password-file",
        metavar="FILE",
        help="read the .seb password from the first line of FILE, or of standard input "
        "with - (asked on the terminal when neither option is given)",
    )
    group.add_argument(
        "--password",
        help="the .seb password on the command line (visible to other users in the "
        "process list: prefer --password-file)",
    )


class _Parser(argparse.ArgumentParser):
    """Argument parser whose usage errors honour ``--json`` (a JSON object on stdout too)."""

    json_errors = False

    def error(self, message: str) -> Any:  # argparse declares NoReturn
        if _Parser.json_errors:
            print(json.dumps({"ok": False, "error": message, "exit_code": 2}))
        return super().error(message)


def _subcommands(
    parser: argparse.ArgumentParser, words: str = ""
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every parser below ``parser`` with its command words (``config keys``)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                path = f"{words} {name}".strip()
                yield path, child
                yield from _subcommands(child, path)


def _polish(parser: argparse.ArgumentParser) -> None:
    """Give every command its example, and accept the global options after it too."""
    shared = [
        a
        for a in parser._actions
        if a.option_strings and a.dest not in ("help", "version") and a.help
    ]
    for words, child in [("", parser), *_subcommands(parser)]:
        child.formatter_class = argparse.RawDescriptionHelpFormatter
        if words in EXAMPLES:  # a test makes sure every command has one
            child.epilog = f"example:\n  {EXAMPLES[words]}"
        if not words:
            continue
        taken = {s for a in child._actions for s in a.option_strings}
        for action in shared:
            if taken.isdisjoint(action.option_strings):
                inherited = copy.copy(action)
                inherited.default = argparse.SUPPRESS  # absent: keep the value parsed before
                child._add_action(inherited)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    p.add_argument(
        "target",
        help="a Lockdown exam configuration or .seb file, an https:// URL, or a lockdown://, "
        "lockdowns://, seb:// or sebs:// link",
    )
    p.set_defaults(func=_dispatch("lockdown.app", "main_open", "open"))

    p = sub.add_parser("demo", help="open the bundled demo exam")
    p.add_argument("--screenshots", metavar="DIR", help="save screenshots of the demo journey here")
    p.set_defaults(func=_dispatch("lockdown.app", "main_demo", "demo"))

    p = sub.add_parser(
        "session",
        help='run as the whole X session of the display manager\'s "Lockdown exam" '
        "(nothing else on the display): ask for the exam link, run the exam, end",
    )
    p.set_defaults(func=_dispatch("lockdown.xsession", "main_session", "session"))

    p = sub.add_parser("settings", help="print the settings reference")
    p.set_defaults(func=cmd_settings)

    config = sub.add_parser("config", help="exam configuration files").add_subparsers(
        dest="config_command", metavar="ACTION", required=True
    )
    p = config.add_parser(
        "validate",
        help="check an exam configuration or .seb file (signature, schema, validity; "
        "for .seb: the settings mapped and ignored)",
    )
    p.add_argument("file", help="the Lockdown exam configuration (.toml) or .seb file")
    p.add_argument("--pubkey", help="also trust this public key (file or ed25519:… text)")
    _password_options(p)
    p.set_defaults(func=cmd_config_validate)
    p = config.add_parser("sign", help="sign an exam configuration file")
    p.add_argument("file", help="the Lockdown exam configuration (.toml) to sign")
    p.add_argument(
        "--key", required=True, metavar="KEYFILE", help="private key from `lockdown keys generate`"
    )
    p.add_argument("--out", metavar="FILE", help="write the signed file here instead of in place")
    p.set_defaults(func=cmd_config_sign)
    p = config.add_parser(
        "keys", help="print the Config Key and Browser Exam Key of a .seb or Lockdown config"
    )
    p.add_argument("file", help="the .seb file or Lockdown exam configuration")
    _password_options(p)
    p.set_defaults(func=_dispatch("lockdown.config.keyscmd", "main_keys", "config keys"))

    keys_ = sub.add_parser("keys", help="signing keys").add_subparsers(
        dest="keys_command", metavar="ACTION", required=True
    )
    p = keys_.add_parser(
        "generate",
        help="make an Ed25519 key pair for signing exam configurations, or with --recipient "
        "an X25519 pair that recordings are sealed for",
    )
    p.add_argument(
        "--recipient",
        action="store_true",
        help="make a recipient key pair (NAME.key opens recordings, NAME.pub seals them)",
    )
    p.add_argument(
        "--out", default="lockdown-signing", help="file name prefix (default: lockdown-signing)"
    )
    p.set_defaults(func=cmd_keys_generate)

    journal = sub.add_parser("journal", help="session journals").add_subparsers(
        dest="journal_command", metavar="ACTION", required=True
    )
    p = journal.add_parser(
        "verify", help="check a journal's chains: intact and closed, not closed, edited or empty"
    )
    p.add_argument("file", help="the session journal (session-….jsonl)")
    p.add_argument(
        "--key",
        metavar="FILE",
        help="the recipient's private key (NAME.key): also check every record's MAC",
    )
    p.add_argument("--json", action="store_true", help=_JSON_HELP)
    p.set_defaults(func=cmd_journal_verify)

    p = sub.add_parser(
        "environment",
        help="what the guards see on this machine, and whether the organisation's policy "
        "lets an exam start here (exit 1 when not; for support staff)",
    )
    p.add_argument("--json", action="store_true", help=_JSON_HELP)
    p.set_defaults(func=_dispatch("lockdown.guards.environment", "main", "environment"))

    p = sub.add_parser("record", help="make a short test recording with the configured sources")
    p.add_argument("--seconds", type=float, default=10.0, help="how long to record (default: 10)")
    p.add_argument(
        "--out", required=True, metavar="DIR", help="the folder to record into (a spool)"
    )
    p.add_argument(
        "--config", metavar="FILE", help="exam configuration whose proctoring settings to use"
    )
    p.add_argument(
        "--recipient",
        metavar="FILE",
        help="public key (NAME.pub from `keys generate --recipient`) the recording is sealed "
        "for; default: the organisation's proctoring.recipient_key",
    )
    p.set_defaults(func=_dispatch("lockdown.capture.cli", "main_record", "record"))

    spool = sub.add_parser("spool", help="recording spools").add_subparsers(
        dest="spool_command", metavar="ACTION", required=True
    )
    p = spool.add_parser("verify", help="check every segment of a spool and summarise it")
    p.add_argument("dir", help="the spool folder (holds spool.json)")
    p.add_argument(
        "--key",
        metavar="FILE",
        help="the recipient's private key (NAME.key): also check the sealed contents",
    )
    p.add_argument("--json", action="store_true", help=_JSON_HELP)
    p.set_defaults(func=_dispatch("lockdown.upload.cli", "main_spool_verify", "spool verify"))
    p = spool.add_parser(
        "export",
        help="verify a spool, then write one playable WebM per stream and recording.json",
    )
    p.add_argument("dir", help="the spool folder")
    p.add_argument(
        "--key", required=True, metavar="FILE", help="the recipient's private key (NAME.key)"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the exported files")
    p.set_defaults(func=_dispatch("lockdown.capture.export", "main_spool_export", "spool export"))

    p = sub.add_parser(
        "upload",
        help="send the recordings of earlier sessions that did not reach the proctoring "
        "service yet (exit 1 when some stay for later)",
    )
    p.add_argument(
        "--spool",
        metavar="DIR",
        help="a spool folder, or a folder of spools (default: this user's spools)",
    )
    p.add_argument(
        "--deadline",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="give up after this long (default: 600)",
    )
    p.add_argument("--json", action="store_true", help=_JSON_HELP)
    p.set_defaults(func=_dispatch("lockdown.upload.drain", "main_upload", "upload"))

    p = sub.add_parser(
        "check",
        help="run the system check and print the report (exit 1 when a blocking step fails)",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help="check for this exam configuration (its streams, policies and service); "
        "without it: what a proctored exam with camera, microphone and screen needs",
    )
    p.add_argument(
        "--send",
        action="store_true",
        help="also send the report to the exam's proctoring service",
    )
    p.add_argument("--json", action="store_true", help=_JSON_HELP)
    p.add_argument(
        "--gui",
        action="store_true",
        help="show the check screen (camera preview, microphone meter, Retry per step)",
    )
    p.set_defaults(func=_dispatch("lockdown.checks.cli", "main", "check"))
    _polish(parser)
    return parser


#: Commands that log their progress at INFO; the rest only warn.
_CHATTY = frozenset({"open", "demo", "record", "session"})


#: Exit code when the reader of our output went away (128 + SIGPIPE, as a shell reports it).
EXIT_CLOSED_PIPE: Final = 141


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    """One line on stderr; with ``--json`` also a JSON object on stdout."""
    print(f"lockdown: {message}", file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps({"ok": False, "error": message, "exit_code": code}))
    return code


def _os_error(exc: OSError) -> str:
    """An operating-system error the command did not expect, as one line that says what to do."""
    where = f"{exc.filename}: " if exc.filename else ""
    reason = exc.strerror or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{where}{reason}; free some disk space or choose another folder"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{where}{reason}; choose a folder you can write to"
    return f"{where}{reason}"


def _run(argv: Sequence[str] | None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if UNTRUSTED_ARGS in arguments:
        try:
            arguments = untrusted_argv(arguments)
        except UserError as exc:
            print(f"lockdown: {exc}", file=sys.stderr)
            return exc.exit_code
    _Parser.json_errors = "--json" in arguments
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
        return _fail(args, str(exc), exc.exit_code)
    except KeyboardInterrupt:
        print("lockdown: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        raise
    except OSError as exc:
        log.init.debug("Unexpected operating-system error", exc_info=True)
        if exc.filename is None and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO):
            _silence_stdout()  # most likely stdout itself: what it holds cannot be written
        return _fail(args, _os_error(exc), 2)
    return code


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lockdown`` command; returns its exit code (see the module docstring)."""
    try:
        code = _run(argv)
        sys.stdout.flush()  # a closed pipe or a full disk shows here, not at exit
    except BrokenPipeError:
        _silence_stdout()  # the reader went away (`| head -1`): stop quietly
        return EXIT_CLOSED_PIPE
    except OSError as exc:  # stdout itself cannot be written (`> /dev/full`)
        _silence_stdout()
        print(f"lockdown: cannot write the output: {_os_error(exc)}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
