"""A self-signed certificate for 127.0.0.1 and the local HTTP server speaking TLS with it."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

from tests.support.httpserver import LocalServer
from tests.support.xserver import need


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """``(cert.pem, key.pem)`` for 127.0.0.1, made with the openssl tool."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            need("openssl"),
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
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
        timeout=30,
    )
    return cert, key


def tls_server(cert: Path, key: Path) -> LocalServer:
    """A started :class:`LocalServer` answering on https://127.0.0.1:PORT."""
    server = LocalServer()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server._httpd.socket = context.wrap_socket(server._httpd.socket, server_side=True)
    return server.start()


def https_url(server: LocalServer, path: str) -> str:
    return server.url(path).replace("http://", "https://", 1)
