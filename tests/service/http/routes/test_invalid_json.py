"""A body that is not JSON gets the same 422 and the same words on every route that takes JSON."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("document", "detail"),
    [
        (
            b'{"vectors": [[1, 2, 3, 4]',
            "Invalid JSON: EOF while parsing a list at line 1 column 25",
        ),
        (b'{"vectors": [[1, 2,, 3]]}', "Invalid JSON: expected value at line 1 column 20"),
        (b"{'vectors': []}", "Invalid JSON: key must be a string at line 1 column 2"),
        (b"", "Invalid JSON: EOF while parsing a value at line 1 column 0"),
    ],
)
@pytest.mark.parametrize("route", ["/score", "/encode", "/train"])
def test_invalid_json_is_worded_alike_everywhere(
    client: TestClient, auth: dict[str, str], route: str, document: bytes, detail: str
) -> None:
    response = client.post(route, content=document, headers={**JSON, **auth})
    assert (response.status_code, response.json()) == (422, {"detail": detail})
