"""Every route as a `Call`: the request to send and how to read its answer, whatever sends it.

`Client` (blocking) and `AsyncClient` send the same calls, so the two cannot drift apart. Large
batches travel as `.npy` (a binary body, the options in the query string) and /score answers
them as `.npz`; small ones as JSON, which a person can read in a proxy's log.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx
import numpy as np
import numpy.typing as npt
from pydantic import TypeAdapter

from core.config import TrainConfig
from core.jobs.records import JobRecord
from core.manifest import Manifest, ModelRef
from service.client.types import (
    CalibrationHistogram,
    Dataset,
    ModelInfo,
    Promoted,
    Readiness,
    Rows,
    Scores,
    Submitted,
    TrafficSnapshot,
    scores_from_json,
    scores_from_npz,
)

T = TypeVar("T")
NPY = "application/x-npy"
NPZ = "application/x-npz"
NPY_ABOVE_VALUES = 16_384
"""Batches with more values than this go as `.npy`: JSON costs the server a parse per value."""

Files = dict[str, tuple[str, bytes | io.BufferedReader]]


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    read: Callable[[httpx.Response], T]
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    content: bytes | None = None
    files: Files | None = None
    data: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def npy_bytes(array: npt.ArrayLike) -> bytes:
    out = io.BytesIO()
    np.save(out, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    return out.getvalue()


def as_matrix(rows: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Rows as a float32 n × d array (one row becomes a batch of one)."""
    array = np.asarray(rows, dtype=np.float32)
    return array.reshape(1, -1) if array.ndim == 1 else array


def _model_params(model: str | None, version: int | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if model is not None:
        params["model"] = model
    if version is not None:
        params["version"] = version
    return params


def _model_of(response: httpx.Response) -> ModelRef:
    return ModelRef(
        name=response.headers["x-model-name"], version=int(response.headers["x-model-version"])
    )


def _read_npz(response: httpx.Response) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(response.content), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def _json(adapter: TypeAdapter[T]) -> Callable[[httpx.Response], T]:
    return lambda response: adapter.validate_json(response.content)


def _model(cls: Any) -> Callable[[httpx.Response], Any]:
    return lambda response: cls.model_validate_json(response.content)


def _rows_call(
    path: str,
    field_name: str,
    rows: npt.ArrayLike,
    model: str | None,
    version: int | None,
    binary: bool | None,
) -> Call[Rows]:
    array = as_matrix(rows)
    params = _model_params(model, version)
    if binary if binary is not None else array.size > NPY_ABOVE_VALUES:

        def read_npy(response: httpx.Response) -> Rows:
            values = np.load(io.BytesIO(response.content), allow_pickle=False)
            return Rows(_model_of(response), values)

        return Call(
            "POST",
            path,
            read_npy,
            params,
            content=npy_bytes(array),
            headers={"content-type": NPY, "accept": NPY},
        )

    def read_json(response: httpx.Response) -> Rows:
        body = response.json()
        model_ref = ModelRef.model_validate(body["model"])
        out_field = "codes" if path == "/encode" else "reconstructions"
        return Rows(model_ref, np.asarray(body[out_field], dtype=np.float32))

    return Call("POST", path, read_json, params, json={field_name: array.tolist()})


def encode(
    rows: npt.ArrayLike, model: str | None, version: int | None, binary: bool | None
) -> Call[Rows]:
    return _rows_call("/encode", "vectors", rows, model, version, binary)


def decode(
    codes: npt.ArrayLike, model: str | None, version: int | None, binary: bool | None
) -> Call[Rows]:
    return _rows_call("/decode", "codes", codes, model, version, binary)


def reconstruct(
    rows: npt.ArrayLike, model: str | None, version: int | None, binary: bool | None
) -> Call[Rows]:
    return _rows_call("/reconstruct", "vectors", rows, model, version, binary)


def score(
    rows: npt.ArrayLike,
    model: str | None,
    version: int | None,
    threshold: float | None,
    explain: bool,
    top: int | None,
    binary: bool | None,
) -> Call[Scores]:
    array = as_matrix(rows)
    options: dict[str, Any] = {}
    if threshold is not None:
        options["threshold"] = threshold
    if explain:
        options["explain"] = True
    if top is not None:
        options["top"] = top
    if binary if binary is not None else array.size > NPY_ABOVE_VALUES:
        query = {**_model_params(model, version), **options}  # httpx sends True as "true"

        def read_npz(response: httpx.Response) -> Scores:
            return scores_from_npz(_model_of(response), _read_npz(response))

        return Call(
            "POST",
            "/score",
            read_npz,
            query,
            content=npy_bytes(array),
            headers={"content-type": NPY, "accept": NPZ},
        )
    return Call(
        "POST",
        "/score",
        lambda r: scores_from_json(r.json()),
        _model_params(model, version),
        json={"vectors": array.tolist(), **options},
    )


# -- models ------------------------------------------------------------------------------------

_MODELS = TypeAdapter(list[ModelInfo])


def models() -> Call[list[ModelInfo]]:
    return Call("GET", "/models", lambda r: _MODELS.validate_python(r.json()["models"]))


def model(name: str) -> Call[ModelInfo]:
    return Call("GET", f"/models/{name}", _model(ModelInfo))


def manifest(name: str, version: int) -> Call[Manifest]:
    return Call("GET", f"/models/{name}/versions/{version}", _model(Manifest))


def promote(name: str, version: int) -> Call[Promoted]:
    return Call("POST", f"/models/{name}/versions/{version}/promote", _model(Promoted))


def delete_version(name: str, version: int) -> Call[None]:
    return Call("DELETE", f"/models/{name}/versions/{version}", lambda r: None)


def calibration(name: str, version: int) -> Call[CalibrationHistogram]:
    path = f"/models/{name}/versions/{version}/calibration"
    return Call("GET", path, _model(CalibrationHistogram))


def traffic(name: str, version: int) -> Call[TrafficSnapshot]:
    return Call("GET", f"/models/{name}/versions/{version}/traffic", _model(TrafficSnapshot))


# -- training, jobs, datasets ------------------------------------------------------------------

_JOBS = TypeAdapter(list[JobRecord])
_DATASETS = TypeAdapter(list[Dataset])


def train(
    name: str,
    data: npt.ArrayLike | str,
    config: TrainConfig | Mapping[str, Any] | None,
    promote: bool,
    feature_names: list[str] | None,
) -> Call[Submitted]:
    """`data`: rows (sent inline), or the id of a dataset uploaded with `upload_dataset`."""
    if isinstance(data, str):
        source: dict[str, Any] = {"dataset": data}
    else:
        source = {"vectors": as_matrix(data).tolist()}
    if isinstance(config, TrainConfig):
        settings = config.model_dump(mode="json", exclude_unset=True)
    else:
        settings = dict(config or {})
    body: dict[str, Any] = {"name": name, "data": source, "config": settings, "promote": promote}
    if feature_names is not None:
        body["feature_names"] = list(feature_names)
    return Call("POST", "/train", _model(Submitted), json=body)


def jobs(limit: int) -> Call[list[JobRecord]]:
    return Call("GET", "/jobs", lambda r: _JOBS.validate_python(r.json()["jobs"]), {"limit": limit})


def job(job_id: str) -> Call[JobRecord]:
    return Call("GET", f"/jobs/{job_id}", _model(JobRecord))


def cancel_job(job_id: str) -> Call[JobRecord]:
    return Call("DELETE", f"/jobs/{job_id}", _model(JobRecord))


def events(job_id: str, last_event_id: int) -> Call[None]:
    """Only the request: the answer is a stream, read line by line (service/client/events.py)."""
    headers = {"accept": "text/event-stream"}
    if last_event_id:
        headers["last-event-id"] = str(last_event_id)
    return Call("GET", f"/jobs/{job_id}/events", lambda r: None, headers=headers)


def upload_dataset(data: npt.ArrayLike | str | Path, filename: str | None) -> Call[Dataset]:
    """A file (.csv, .npy, .npz, .parquet) by path, or rows sent as `.npy`."""
    if isinstance(data, str | Path):
        path = Path(data)
        files: Files = {"file": (filename or path.name, path.read_bytes())}
    else:
        files = {"file": (filename or "rows.npy", npy_bytes(as_matrix(data)))}
    return Call("POST", "/datasets", _model(Dataset), files=files)


def datasets() -> Call[list[Dataset]]:
    return Call("GET", "/datasets", _json(_DATASETS))


def dataset(dataset_id: str) -> Call[Dataset]:
    return Call("GET", f"/datasets/{dataset_id}", _model(Dataset))


def delete_dataset(dataset_id: str) -> Call[Dataset]:
    return Call("DELETE", f"/datasets/{dataset_id}", _model(Dataset))


def import_model(
    path: str | Path,
    name: str,
    calibration: npt.ArrayLike | str | Path,
    options: Mapping[str, Any],
    promote: bool,
) -> Call[Submitted]:
    """`calibration`: normal rows (a file, or an array sent as `.npy`), or a dataset id."""
    model_path = Path(path)
    files: Files = {"file": (model_path.name, model_path.read_bytes())}
    data: dict[str, Any] = {"name": name, "promote": str(promote).lower()}
    data.update({key: str(value) for key, value in options.items() if value is not None})
    if isinstance(calibration, str) and not Path(calibration).suffix:
        data["dataset"] = calibration
    elif isinstance(calibration, str | Path):
        files["calibration"] = (Path(calibration).name, Path(calibration).read_bytes())
    else:
        files["calibration"] = ("calibration.npy", npy_bytes(as_matrix(calibration)))
    return Call("POST", "/import", _model(Submitted), files=files, data=data)


# -- operations --------------------------------------------------------------------------------


def health() -> Call[bool]:
    return Call("GET", "/healthz", lambda r: r.json().get("status") == "ok")


def ready() -> Call[Readiness]:
    return Call("GET", "/readyz", _model(Readiness))


def metrics() -> Call[str]:
    return Call("GET", "/metrics", lambda r: r.text)
