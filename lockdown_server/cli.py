"""The ``lockdown-server`` command: ``serve``, ``exam create|list``, ``candidates add``, ``export``,
``retention``.

Storage: SQLite and the ``objects`` folder in ``--data`` by default (one service process);
``--database-url postgresql://…`` (or ``LOCKDOWN_SERVER_DATABASE_URL``, which keeps the
password out of the process list) and ``--s3-bucket`` (``--s3-endpoint`` for MinIO or
Ceph; credentials from boto3's usual environment and files) for several processes. The
data folder still holds the keys: give every process the same ``keys`` folder.

Exit codes: 0 success, 1 an export found something that does not verify, 2 a usage or
configuration error (one line on stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import csv
import ipaddress
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Final

from lockdown.errors import UserError
from lockdown_server import __version__
from lockdown_server.errors import ServiceError
from lockdown_server.settings import MIB, ServiceSettings

DEFAULT_PORT: Final = 8470
DEFAULT_DATA: Final = "lockdown-server-data"
URL_FILE: Final = "service.json"

EXAMPLES: Final = {
    "serve": "lockdown-server serve --data /srv/lockdown --host 0.0.0.0 --port 443 "
    "--tls-cert cert.pem --tls-key key.pem",
    "exam create": 'lockdown-server exam create --title "Physics final" --streams camera,screen '
    "--start 2026-06-01T08:00:00Z --end 2026-06-01T12:00:00Z --start-url https://exam.example.org/",
    "candidates add": 'lockdown-server candidates add --exam physics-final --id u1 --name "Ada L" '
    "--group A   (or --csv people.csv with id,group,name rows)",
    "export": "lockdown-server export 1b4e28ba-2fa1-11d2-883f-0016d3cca427 --out review/",
    "retention": "lockdown-server retention --data /srv/lockdown   (daily, e.g. from cron)",
}
DATABASE_ENV: Final = "LOCKDOWN_SERVER_DATABASE_URL"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _time(text: str | None, option: str) -> float | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ServiceError(
            f"{option} {text!r}: not a date and time like 2026-06-01T08:00:00Z"
        ) from None
    if moment.tzinfo is None:
        raise ServiceError(f"{option} {text!r}: give the zone too, like 2026-06-01T08:00:00Z")
    return moment.timestamp()


def _settings(args: argparse.Namespace, public_url: str = "", **more: float) -> ServiceSettings:
    url = args.database_url or os.environ.get(DATABASE_ENV, "")
    if url and not url.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:")):
        raise ServiceError(
            f"--database-url: {url.split(':', 1)[0]!r} is not supported; "
            "give postgresql://USER:PASSWORD@HOST/DB (or leave it out for SQLite)"
        )
    if args.s3_endpoint and not args.s3_bucket:
        raise ServiceError("--s3-endpoint needs --s3-bucket")
    return ServiceSettings(
        data=Path(args.data).resolve(),
        public_url=public_url,
        database_url=url,
        s3_bucket=args.s3_bucket or "",
        s3_endpoint=args.s3_endpoint or "",
        s3_prefix=args.s3_prefix or "",
        **more,  # type: ignore[arg-type]
    )


def _service_url(args: argparse.Namespace) -> str:
    if args.url:
        return str(args.url)
    try:
        saved = json.loads((Path(args.data) / URL_FILE).read_text(encoding="utf-8"))
        return str(saved["url"])
    except (OSError, ValueError, KeyError, TypeError):
        raise ServiceError(
            "say where candidates reach the service with --url https://HOST/ "
            "(or run `lockdown-server serve` once with this data folder)"
        ) from None


# -- commands ------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    tls = bool(args.tls_cert or args.tls_key)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ServiceError("give both --tls-cert and --tls-key")
    if not _loopback(args.host) and not tls and not args.behind_proxy:
        raise ServiceError(
            f"refusing to serve on {args.host} without TLS: give --tls-cert and --tls-key, or "
            "--behind-proxy when a reverse proxy in front ends TLS"
        )
    for path in (args.tls_cert, args.tls_key):
        if path and not Path(path).is_file():
            raise ServiceError(f"{path}: file not found")
    scheme = "https" if tls or args.behind_proxy else "http"
    host = f"[{args.host}]" if ":" in args.host else args.host
    public_url = args.public_url or f"{scheme}://{host}:{args.port}/"
    import uvicorn

    from lockdown_server.api.app import create_app
    from lockdown_server.exams import service_url_of
    from lockdown_server.service import Service

    public_url = service_url_of(public_url)
    settings = _settings(
        args,
        public_url,
        min_free_bytes=int(args.min_free_mb * MIB),
        shared_sweep_age_s=args.sweep_age,
    )
    service = Service.open(settings, sweep=True)
    (settings.data / URL_FILE).write_text(json.dumps({"url": public_url}) + "\n", encoding="utf-8")
    logging.basicConfig(level=logging.INFO, format="lockdown-server: %(message)s")
    print(f"lockdown-server: serving {settings.data} at {public_url}", file=sys.stderr, flush=True)
    try:
        uvicorn.run(
            create_app(service),
            host=args.host,
            port=args.port,
            ssl_certfile=args.tls_cert,
            ssl_keyfile=args.tls_key,
            proxy_headers=args.behind_proxy,
            forwarded_allow_ips="*" if args.behind_proxy else None,
            log_level="warning",
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=5,
        )
    finally:
        service.close()
    return 0


def cmd_exam_create(args: argparse.Namespace) -> int:
    from lockdown_server import exams
    from lockdown_server.service import Service

    service = Service.open(_settings(args))
    streams = [s.strip() for s in args.streams.split(",") if s.strip()]
    exam, config = exams.create(
        service,
        title=args.title,
        streams=streams,
        valid_from=_time(args.start, "--start"),
        valid_until=_time(args.end, "--end"),
        service_url=_service_url(args),
        exam_id=args.id or "",
        start_url=args.start_url or "",
        retention_days=args.retention_days,
    )
    if args.out:
        try:
            Path(args.out).write_bytes(config)
        except OSError as exc:
            raise ServiceError(f"{args.out}: cannot write ({exc.strerror})") from None
    else:
        sys.stdout.buffer.write(config)
    print(
        f"lockdown-server: exam {exam.id} created; clients trust its configuration when the "
        f'organisation file lists config.trusted_keys = ["{service.keys.token_public}"]',
        file=sys.stderr,
    )
    return 0


def cmd_exam_list(args: argparse.Namespace) -> int:
    from lockdown_server import exams
    from lockdown_server.service import Service

    for exam in exams.all_exams(Service.open(_settings(args))):
        print(f"{exam.id}\t{exam.title}\t{','.join(exam.streams)}")
    return 0


def cmd_candidates_add(args: argparse.Namespace) -> int:
    from lockdown_server import exams
    from lockdown_server.service import Service

    people: list[exams.Candidate] = []
    if args.csv:
        try:
            with Path(args.csv).open(encoding="utf-8", newline="") as fh:
                for number, row in enumerate(csv.reader(fh), 1):
                    if not row or row[0].startswith("#"):
                        continue
                    if len(row) != 3:
                        raise ServiceError(f"{args.csv} line {number}: expected id,group,name")
                    people.append(exams.Candidate(*(cell.strip() for cell in row)))
        except (OSError, UnicodeError) as exc:
            raise ServiceError(f"{args.csv}: cannot read the file ({exc})") from None
    if args.id:
        people.append(exams.Candidate(args.id, args.group or "", args.name or ""))
    if not people:
        raise ServiceError("name a candidate with --id (and --name, --group) or give --csv FILE")
    service = Service.open(_settings(args))
    exam = exams.get(service, args.exam)
    for link in exams.add_candidates(service, exam, people, _service_url(args)):
        print(link)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from lockdown_server import export
    from lockdown_server.service import Service

    service = Service.open(_settings(args))
    return export.main_export(service, args.session, Path(args.out))


def cmd_retention(args: argparse.Namespace) -> int:
    from lockdown_server import retention
    from lockdown_server.service import Service

    def show(item: retention.Deleted) -> None:
        print(
            f"{item.exam_id}\t{item.session_id}\t{item.user_id}\t"
            f"{item.objects} objects\t{item.bytes} bytes",
            flush=True,
        )

    done = retention.run(Service.open(_settings(args)), dry_run=args.dry_run, report=show)
    verb = "would delete" if args.dry_run else "deleted"
    total = sum(item.bytes for item in done)
    print(f"lockdown-server: {verb} {len(done)} expired sessions ({total} bytes)", file=sys.stderr)
    return 0


# -- parsing -------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lockdown-server",
        description="The reference proctoring service for Lockdown.",
        epilog="Examples:\n  " + "\n  ".join(EXAMPLES.values()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"lockdown-server {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def data_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--data",
            default=DEFAULT_DATA,
            metavar="DIR",
            help=f"the data folder: database, recordings, keys (default ./{DEFAULT_DATA})",
        )
        sub.add_argument(
            "--database-url",
            metavar="URL",
            help=f"PostgreSQL for several service processes: postgresql://USER:PW@HOST/DB "
            f"(or ${DATABASE_ENV}; default SQLite in the data folder)",
        )
        sub.add_argument("--s3-bucket", metavar="NAME", help="keep recordings in this S3 bucket")
        sub.add_argument(
            "--s3-endpoint", metavar="URL", help="an S3-compatible endpoint (MinIO, Ceph)"
        )
        sub.add_argument("--s3-prefix", metavar="PREFIX", help="a key prefix in the bucket")

    serve = commands.add_parser("serve", help="run the service", epilog=EXAMPLES["serve"])
    data_option(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on")
    serve.add_argument("--tls-cert", metavar="PEM", help="TLS certificate (chain) file")
    serve.add_argument("--tls-key", metavar="PEM", help="TLS private key file")
    serve.add_argument(
        "--behind-proxy",
        action="store_true",
        help="a reverse proxy in front ends TLS (plain http here on any address)",
    )
    serve.add_argument(
        "--public-url", metavar="URL", help="the URL candidates reach the service at"
    )
    serve.add_argument(
        "--min-free-mb",
        type=float,
        default=64.0,
        metavar="MB",
        help="refuse uploads (507, retried later) below this much free space (default 64)",
    )
    serve.add_argument(
        "--sweep-age",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="with PostgreSQL: at start, remove objects a crash left only once this old, "
        "since other processes may be mid-upload (default 3600)",
    )
    serve.set_defaults(handler=cmd_serve)

    exam = commands.add_parser("exam", help="create and list exams")
    exam_commands = exam.add_subparsers(dest="exam_command", required=True, metavar="ACTION")
    create = exam_commands.add_parser(
        "create",
        help="create an exam and print its signed Lockdown configuration",
        epilog=EXAMPLES["exam create"],
    )
    data_option(create)
    create.add_argument("--title", required=True, help="the exam's title")
    create.add_argument("--id", help="the exam's id (default: from the title)")
    create.add_argument(
        "--streams",
        default="camera,microphone,screen",
        help="what is recorded, comma-separated: camera, microphone, screen",
    )
    create.add_argument("--start", metavar="TIME", help="start of the window (ISO 8601, zone)")
    create.add_argument("--end", metavar="TIME", help="end of the window (ISO 8601, zone)")
    create.add_argument("--start-url", metavar="URL", help="the exam's start page")
    create.add_argument(
        "--retention-days", type=int, default=30, help="how long recordings are kept"
    )
    create.add_argument("--url", metavar="URL", help="the service's URL for candidates")
    create.add_argument("--out", metavar="FILE", help="write the configuration here")
    create.set_defaults(handler=cmd_exam_create)
    listing = exam_commands.add_parser("list", help="list the exams")
    data_option(listing)
    listing.set_defaults(handler=cmd_exam_list)

    candidates = commands.add_parser("candidates", help="candidates and their launch links")
    cand_commands = candidates.add_subparsers(dest="cand_command", required=True, metavar="ACTION")
    add = cand_commands.add_parser(
        "add", help="add candidates; print a launch link each", epilog=EXAMPLES["candidates add"]
    )
    data_option(add)
    add.add_argument("--exam", required=True, help="the exam's id")
    add.add_argument("--id", help="the candidate's user id")
    add.add_argument("--name", help="the candidate's name")
    add.add_argument("--group", help="the candidate's group")
    add.add_argument("--csv", metavar="FILE", help="candidates as id,group,name rows")
    add.add_argument("--url", metavar="URL", help="the service's URL for candidates")
    add.set_defaults(handler=cmd_candidates_add)

    export = commands.add_parser(
        "export",
        help="write a session's recordings (WebM), events and hashes for review",
        epilog=EXAMPLES["export"],
    )
    data_option(export)
    export.add_argument("session", help="the session's id")
    export.add_argument("--out", required=True, metavar="DIR", help="the output folder")
    export.set_defaults(handler=cmd_export)

    keep = commands.add_parser(
        "retention",
        help="delete the recordings and rows of sessions past their exam's retention",
        epilog=EXAMPLES["retention"],
    )
    data_option(keep)
    keep.add_argument("--dry-run", action="store_true", help="only list what is due")
    keep.set_defaults(handler=cmd_retention)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except UserError as exc:
        print(f"lockdown-server: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        return 141
    return code


if __name__ == "__main__":
    sys.exit(main())
