"""Rows finite in float32 whose outputs overflow inside the graph: a 422 naming the row, never a
200 whose JSON holds `null` (found by schemathesis: a score of 3e16 squared)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

HUGE = [3.0507699098278964e16, 0.0, -3.402823466e38, 0.0]
OVERFLOWS = "overflow float32; its values lie too far outside the range the model was trained on"


@pytest.mark.parametrize(
    ("path", "body", "output"),
    [
        ("/score", {"vectors": [[0.1, 0.2, 0.3, 0.4], HUGE]}, "scores"),
        ("/score", {"vectors": [HUGE], "explain": True}, "scores"),
        ("/decode", {"codes": [[3e38, -3e38]]}, "reconstructions"),
    ],
)
def test_an_output_that_overflows_is_a_422(
    client: TestClient, path: str, body: dict[str, object], output: str
) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 422, response.text
    row = len(body.get("vectors", [[]])) - 1
    assert response.json() == {
        "detail": f"row {row}: its {output} {OVERFLOWS} for it to compute them"
    }


def test_v2_says_so_as_a_400(client: TestClient) -> None:
    tensor = {"name": "x", "shape": [1, 4], "datatype": "FP32", "data": HUGE}
    response = client.post("/v2/models/tiny/infer", json={"inputs": [tensor]})
    assert response.status_code == 400, response.text
    assert OVERFLOWS in response.json()["error"]


def test_large_rows_that_do_not_overflow_are_answered(client: TestClient) -> None:
    response = client.post("/score", json={"vectors": [[1e6, -1e6, 1e5, 0.0]]})
    assert response.status_code == 200
    assert response.json()["scores"][0] > 0
