"""Crafted `.npy` headers get 400 naming the problem on every inference route, never a 500."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.crafted_npy import CRAFTED

ROUTES = ["/score", "/encode", "/reconstruct", "/decode"]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("case", list(CRAFTED))
def test_a_crafted_npy_header_is_a_400(client: TestClient, route: str, case: str) -> None:
    response = client.post(
        route, content=CRAFTED[case], headers={"content-type": "application/x-npy"}
    )
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert detail.startswith((".npy", "body is not a valid .npy array")), detail
