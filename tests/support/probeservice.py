"""A stand-in proctoring service on 127.0.0.1 for the check's calls (``docs/protocol.md``).

It answers ``GET /healthz``, ``POST /api/v1/probe`` (Bearer probe token; 413 above
4 MiB; the byte count back) and ``POST /api/v1/checks`` (kept in :attr:`reports`), with
the ``Date`` header every answer of a real HTTP server carries. ``refuse_probe`` and
``rate_limit`` make it answer the probe as a refusing or busy service does.

PENDING(issue-19s): the tests that say "against the test service" run here until the
reference service (``lockdown_server``) with its test fixture is on this branch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tests.support.httpserver import LocalServer, Response, SeenRequest

PROBE_TOKEN = "probe.token-for-tests"


def _json(status: int, body: dict[str, Any], **headers: str) -> Response:
    return Response(status, json.dumps(body).encode(), "application/json", dict(headers))


@dataclass
class StandInService:
    server: LocalServer
    refuse_probe: bool = False
    rate_limit: bool = False
    reports: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url("").rstrip("/")

    def _authorised(self, request: SeenRequest) -> bool:
        return request.headers.get("Authorization") == f"Bearer {PROBE_TOKEN}"

    def healthz(self, request: SeenRequest) -> Response:
        return _json(200, {"status": "ok", "version": "stand-in"})

    def probe(self, request: SeenRequest) -> Response:
        if self.refuse_probe or not self._authorised(request):
            return _json(401, {"error": "unauthorized", "message": "probe token refused"})
        if self.rate_limit:
            return _json(
                429, {"error": "rate_limited", "message": "too many"}, **{"Retry-After": "17"}
            )
        if len(request.body) > 4 * 1024 * 1024:
            return _json(413, {"error": "too_large", "message": "4 MiB at most"})
        return _json(200, {"bytes": len(request.body)})

    def checks(self, request: SeenRequest) -> Response:
        if not self._authorised(request):
            return _json(401, {"error": "unauthorized", "message": "token refused"})
        self.reports.append(json.loads(request.body))
        return _json(201, {"check_id": self.reports[-1]["check_id"]})


def mount(server: LocalServer) -> StandInService:
    """Serve the stand-in service's endpoints on ``server``."""
    service = StandInService(server)
    server.routes["/healthz"] = service.healthz
    server.routes["/api/v1/probe"] = service.probe
    server.routes["/api/v1/checks"] = service.checks
    return service
