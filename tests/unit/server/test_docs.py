"""docs/protocol.md's OpenAPI reference and docs/openapi.json are generated from the app."""

from __future__ import annotations

from pathlib import Path

from lockdown_server.api import docgen

DOCS = Path(__file__).resolve().parents[3] / "docs"
REGENERATE = "regenerate with: python -m lockdown_server.api.docgen"


def test_the_openapi_document_is_current() -> None:
    assert (DOCS / "openapi.json").read_text() == docgen.openapi_json(), REGENERATE


def test_the_protocols_endpoint_table_is_current() -> None:
    text = (DOCS / "protocol.md").read_text()
    assert docgen.render(text) == text, REGENERATE


def test_every_error_reply_is_documented_in_the_error_shape() -> None:
    for path, item in docgen.document()["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert "422" not in responses, (method, path)
            for status, entry in responses.items():
                if status[0] in "45":
                    assert "Error" in str(entry.get("content")), (method, path, status)
