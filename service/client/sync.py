"""`Client`: every route of an aeserve server as a blocking method (httpx)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
import numpy.typing as npt

from core.config import TrainConfig
from core.jobs.records import JobRecord
from core.manifest import Manifest
from service.client import calls
from service.client.errors import raise_for_status
from service.client.events import EventParser
from service.client.types import (
    CalibrationHistogram,
    Dataset,
    JobEvent,
    ModelInfo,
    Promoted,
    Readiness,
    Rows,
    Scores,
    Submitted,
    TrafficSnapshot,
)
from service.client.waiting import finished

T = TypeVar("T")
DEFAULT_URL = "http://127.0.0.1:8000"


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {api_key}"} if api_key is not None else {}


class Client:
    """A blocking client. Errors raise `service.client.errors` classes carrying the status and
    the server's detail; `binary=None` sends batches over `NPY_ABOVE_VALUES` values as `.npy`.

        with Client("http://127.0.0.1:8000", api_key=key) as client:
            scores = client.score(rows, explain=True)
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        http: httpx.Client | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._http = http or httpx.Client(
            base_url=self.url, headers=auth_headers(api_key), timeout=timeout
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _send(self, call: calls.Call[T]) -> T:
        response = self._http.request(
            call.method,
            call.path,
            params=call.params or None,
            json=call.json,
            content=call.content,
            files=call.files,
            data=call.data,
            headers=call.headers or None,
        )
        raise_for_status(response)
        return call.read(response)

    # -- inference ------------------------------------------------------------------------------

    def encode(
        self,
        rows: npt.ArrayLike,
        *,
        model: str | None = None,
        version: int | None = None,
        binary: bool | None = None,
    ) -> Rows:
        return self._send(calls.encode(rows, model, version, binary))

    def decode(
        self,
        codes: npt.ArrayLike,
        *,
        model: str | None = None,
        version: int | None = None,
        binary: bool | None = None,
    ) -> Rows:
        return self._send(calls.decode(codes, model, version, binary))

    def reconstruct(
        self,
        rows: npt.ArrayLike,
        *,
        model: str | None = None,
        version: int | None = None,
        binary: bool | None = None,
    ) -> Rows:
        return self._send(calls.reconstruct(rows, model, version, binary))

    def score(
        self,
        rows: npt.ArrayLike,
        *,
        model: str | None = None,
        version: int | None = None,
        threshold: float | None = None,
        explain: bool = False,
        top: int | None = None,
        binary: bool | None = None,
    ) -> Scores:
        return self._send(calls.score(rows, model, version, threshold, explain, top, binary))

    # -- models ---------------------------------------------------------------------------------

    def models(self) -> list[ModelInfo]:
        return self._send(calls.models())

    def model(self, name: str) -> ModelInfo:
        return self._send(calls.model(name))

    def manifest(self, name: str, version: int) -> Manifest:
        return self._send(calls.manifest(name, version))

    def promote(self, name: str, version: int) -> Promoted:
        return self._send(calls.promote(name, version))

    def delete_version(self, name: str, version: int) -> None:
        self._send(calls.delete_version(name, version))

    def calibration(self, name: str, version: int) -> CalibrationHistogram:
        return self._send(calls.calibration(name, version))

    def traffic(self, name: str, version: int) -> TrafficSnapshot:
        return self._send(calls.traffic(name, version))

    # -- training and jobs ----------------------------------------------------------------------

    def train(
        self,
        name: str,
        data: npt.ArrayLike | str,
        *,
        config: TrainConfig | Mapping[str, Any] | None = None,
        promote: bool = False,
        feature_names: list[str] | None = None,
    ) -> Submitted:
        """Queue a training job on rows, or on a dataset id from `upload_dataset`."""
        return self._send(calls.train(name, data, config, promote, feature_names))

    def import_model(
        self,
        path: str | Path,
        name: str,
        calibration: npt.ArrayLike | str | Path,
        *,
        promote: bool = False,
        **options: Any,
    ) -> Submitted:
        """Queue an import of an ONNX or TorchScript autoencoder (options as `POST /import`)."""
        return self._send(calls.import_model(path, name, calibration, options, promote))

    def jobs(self, limit: int = 100) -> list[JobRecord]:
        return self._send(calls.jobs(limit))

    def job(self, job_id: str) -> JobRecord:
        return self._send(calls.job(job_id))

    def cancel_job(self, job_id: str) -> JobRecord:
        return self._send(calls.cancel_job(job_id))

    def events(self, job_id: str, last_event_id: int = 0) -> Iterator[JobEvent]:
        """The job's events as they come, until `done`; resumes after epoch `last_event_id`."""
        call = calls.events(job_id, last_event_id)
        with self._http.stream(
            call.method, call.path, headers=call.headers, timeout=httpx.Timeout(None)
        ) as response:
            if not response.is_success:
                response.read()
                raise_for_status(response)
            parser = EventParser()
            for line in response.iter_lines():
                event = parser.feed(line)
                if event is not None:
                    yield event
                    if event.event == "done":
                        return

    def wait(self, job_id: str, timeout: float | None = None) -> JobRecord:
        """Follow the job to its end; `JobFailed` unless it succeeded."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for event in self.events(job_id):
            if event.record is not None:
                return finished(event.record)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} did not finish within {timeout} s")
        return finished(self.job(job_id))

    # -- datasets -------------------------------------------------------------------------------

    def upload_dataset(
        self, data: npt.ArrayLike | str | Path, *, filename: str | None = None
    ) -> Dataset:
        return self._send(calls.upload_dataset(data, filename))

    def datasets(self) -> list[Dataset]:
        return self._send(calls.datasets())

    def dataset(self, dataset_id: str) -> Dataset:
        return self._send(calls.dataset(dataset_id))

    def delete_dataset(self, dataset_id: str) -> Dataset:
        return self._send(calls.delete_dataset(dataset_id))

    # -- operations -----------------------------------------------------------------------------

    def health(self) -> bool:
        return self._send(calls.health())

    def ready(self) -> Readiness:
        return self._send(calls.ready())

    def metrics(self) -> str:
        return self._send(calls.metrics())
