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


def check_score_answer(
    accept: str | None, threshold: float | None, explain: bool, top: int | None = None
) -> None:
    """A `.npy` answer is the scores alone: refuse it, before any work, when the request asks for
    what only the other answers carry, rather than drop the request's options silently."""
    if wants_npz(accept) or not wants_npy(accept):
        return
    asked = [
        name
        for name, given in (
            ("threshold", threshold is not None),
            ("explain", explain),
            ("top", top is not None),
        )
        if given
    ]
    if asked:
        raise NotAcceptable(
            f"an {NPY} answer holds the scores only, so it cannot carry what "
            f"{' and '.join(asked)} asks for; send Accept: {NPZ} (every field of the JSON "
            f"answer) or application/json"
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


def score_response(
    name: str,
    version: int,
    result: Any,
    accept: str | None,
    feature_names: list[str] | None = None,
) -> Response:
    """`feature_names` (one per column) go with the feature errors and the top features."""
    headers = {"X-Model-Name": name, "X-Model-Version": str(version)}
    explained = result.feature_errors is not None or result.top is not None
    if wants_npz(accept):
        arrays = {
            "scores": result.scores,
            "threshold": np.asarray(result.threshold, dtype=np.float32),
            "anomalies": result.anomalies,
            "p_values": result.p_values,
        }
        if result.feature_errors is not None:
            arrays["feature_errors"] = result.feature_errors
        if explained and feature_names is not None:
            arrays["feature_names"] = np.asarray(feature_names, dtype=np.str_)  # no pickle
        if result.top is not None:
            arrays["top_indices"] = result.top.indices
            arrays["top_errors"] = result.top.errors
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
    if explained and feature_names is not None:
        body["feature_names"] = feature_names
    if result.top is not None:
        body["top_features"] = _top_features(result.top, feature_names)
    return JSONBytes(body)


def _top_features(top: Any, names: list[str] | None) -> list[list[dict[str, Any]]]:
    """Each row's worst features as `{"feature", "index", "error"}`, worst first."""
    return [
        [
            {"feature": names[j] if names else f"x{j}", "index": j, "error": error}
            for j, error in zip(row_indices, row_errors, strict=True)
        ]
        for row_indices, row_errors in zip(top.indices.tolist(), top.errors.tolist(), strict=True)
    ]
