"""A real HTTP server on 127.0.0.1 that serves pages and remembers every request."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


Route = Callable[[SeenRequest], Response]


class LocalServer:
    """Routes by path; unknown paths answer 404. ``requests`` lists what arrived."""

    def __init__(self) -> None:
        self.routes: dict[str, Route | Response] = {}
        self.requests: list[SeenRequest] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path
                seen = SeenRequest(
                    self.command, path, {k: v for k, v in self.headers.items()}, body
                )
                with server._lock:
                    server.requests.append(seen)
                route = server.routes.get(path.split("?")[0])
                if route is None:
                    response = Response(404, b"<h1>Not found</h1>")
                elif isinstance(route, Response):
                    response = route
                else:
                    response = route(seen)
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(response.body)))
                for key, value in response.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(response.body)

            do_GET = do_POST = do_PUT = do_HEAD = do_CONNECT = _handle

            def log_message(self, format: str, *args: object) -> None:
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def page(self, path: str, html: str, **kwargs: object) -> str:
        self.routes[path] = Response(body=html.encode(), **kwargs)  # type: ignore[arg-type]
        return self.url(path)

    def seen(self, path: str) -> list[SeenRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.split("?")[0] == path]

    def start(self) -> LocalServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
