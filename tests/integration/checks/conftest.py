"""The system check's integration fixtures: the stand-in proctoring service."""

from __future__ import annotations

import pytest

from tests.support import probeservice
from tests.support.httpserver import LocalServer


@pytest.fixture
def stand_in_service(http_server: LocalServer) -> probeservice.StandInService:
    return probeservice.mount(http_server)
