"""Render runtime results as JSON (orjson, arrays written directly), `.npy` or `.npz` bodies."""

from __future__ import annotations

from typing import Any

import numpy as np
from starlette.responses import Response

from core.errors import NotAcceptable
from service.http.encoding import NPY, NPZ, dump_json, encode_npy, encode_npz


def wants_npy(accept: str | None) -> bool:
    return bool(accept) and NPY in (accept or "").lower()


def wants_npz(accept: str | None) -> bool:
    return bool(accept) and NPZ in (accept or "").lower()


def check_score_answer(accept: str | None, threshold: float | None, explain: bool) -> None:
    """A `.npy` answer is the scores alone: refuse it, before any work, when the request asks for
    what only the other answers carry, rather than drop the request's options silently."""
    if wants_npz(accept) or not wants_npy(accept):
        return
    asked = [
        name
        for name, given in (("threshold", threshold is not None), ("explain", explain))
        if given
    ]
    if asked:
        raise NotAcceptable(
            f"an {NPY} answer holds the scores only, so it cannot carry what "
            f"{' and '.join(asked)} asks for; send Accept: {NPZ} (scores, anomalies, p_values, "
            f"threshold, feature_errors) or application/json"
        )


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
    headers = {"X-Model-Name": name, "X-Model-Version": str(version)}
    if wants_npz(accept):
        arrays = {
            "scores": result.scores,
            "threshold": np.asarray(result.threshold, dtype=np.float32),
            "anomalies": result.anomalies,
            "p_values": result.p_values,
        }
        if result.feature_errors is not None:
            arrays["feature_errors"] = result.feature_errors
        return Response(encode_npz(arrays), media_type=NPZ, headers=headers)
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
