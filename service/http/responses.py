"""Render runtime results as JSON (orjson, arrays written directly) or as `.npy` bodies."""

from __future__ import annotations

from typing import Any

import numpy as np
from starlette.responses import Response

from service.http.encoding import NPY, dump_json, encode_npy


def wants_npy(accept: str | None) -> bool:
    return bool(accept) and NPY in (accept or "").lower()


class JSONBytes(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dump_json(content)


def array_response(
    name: str, version: int, field: str, array: np.ndarray, accept: str | None
) -> Response:
    if wants_npy(accept):
        return Response(
            encode_npy(array),
            media_type=NPY,
            headers={"X-Model-Name": name, "X-Model-Version": str(version)},
        )
    return JSONBytes({"model": {"name": name, "version": version}, field: array})


def score_response(name: str, version: int, result: Any, accept: str | None) -> Response:
    if wants_npy(accept):
        return array_response(name, version, "scores", result.scores, accept)
    body: dict[str, Any] = {
        "model": {"name": name, "version": version},
        "scores": result.scores,
        "threshold": result.threshold,
        "anomalies": result.anomalies,
        "p_values": result.p_values,
    }
    if result.feature_errors is not None:
        body["feature_errors"] = result.feature_errors
    return JSONBytes(body)
