"""Lying or absurd binary-extension headers get 400 from a real server, never a 500."""

from __future__ import annotations

import httpx
import pytest

BODY = b'{"inputs": []}'


@pytest.mark.parametrize("digits", [20, 4301, 10_000])
def test_a_header_length_of_thousands_of_digits_is_a_400(rest: httpx.Client, digits: int) -> None:
    response = rest.post(
        "/v2/models/tiny/infer",
        content=BODY,
        headers={
            "content-type": "application/octet-stream",
            "inference-header-content-length": "9" * digits,
        },
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": f"Inference-Header-Content-Length has {digits} digits; no body is that big"
    }
