"""`AsyncClient`: every route of an aeserve server as a coroutine (httpx), as in `Client`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
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
from service.client.sync import DEFAULT_URL, auth_headers
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


class AsyncClient:
    """An asyncio client, method for method `Client`. Errors raise `service.client.errors`
    classes carrying the status and the server's detail; `binary=None` sends batches over
    `NPY_ABOVE_VALUES` values as `.npy`.

        async with AsyncClient("http://127.0.0.1:8000", api_key=key) as client:
            scores = await client.score(rows, explain=True)
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._http = http or httpx.AsyncClient(
            base_url=self.url, headers=auth_headers(api_key), timeout=timeout
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _send(self, call: calls.Call[T]) -> T:
        response = await self._http.request(
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

    async def encode(
        self,
        rows: npt.ArrayLike,
        *,
        model: str | None = None,
        version: int | None = None,
        binary: bool | None = None,
    ) -> Rows:
        return await self._send(calls.encode(rows, model, version, binary))

    async def decode(
        self,
        codes: npt.ArrayLike,
        *,
        model: str | None = None,
        version: int | None = None,
        binary: bool | None = None,
    ) -> Rows:
        return await self._send(calls.decode(codes, model, version, binary))

    async def reconstruct(
        self,
        rows: npt.ArrayLike,
        *,
        model: str | None = None,
        version: int | None = None,
        binary: bool | None = None,
    ) -> Rows:
        return await self._send(calls.reconstruct(rows, model, version, binary))

    async def score(
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
        return await self._send(calls.score(rows, model, version, threshold, explain, top, binary))

    # -- models ---------------------------------------------------------------------------------

    async def models(self) -> list[ModelInfo]:
        return await self._send(calls.models())

    async def model(self, name: str) -> ModelInfo:
        return await self._send(calls.model(name))

    async def manifest(self, name: str, version: int) -> Manifest:
        return await self._send(calls.manifest(name, version))

    async def promote(self, name: str, version: int) -> Promoted:
        return await self._send(calls.promote(name, version))

    async def delete_version(self, name: str, version: int) -> None:
        await self._send(calls.delete_version(name, version))

    async def calibration(self, name: str, version: int) -> CalibrationHistogram:
        return await self._send(calls.calibration(name, version))

    async def traffic(self, name: str, version: int) -> TrafficSnapshot:
        return await self._send(calls.traffic(name, version))

    # -- training and jobs ----------------------------------------------------------------------

    async def train(
        self,
        name: str,
        data: npt.ArrayLike | str,
        *,
        config: TrainConfig | Mapping[str, Any] | None = None,
        promote: bool = False,
        feature_names: list[str] | None = None,
    ) -> Submitted:
        """Queue a training job on rows, or on a dataset id from `upload_dataset`."""
        return await self._send(calls.train(name, data, config, promote, feature_names))

    async def import_model(
        self,
        path: str | Path,
        name: str,
        calibration: npt.ArrayLike | str | Path,
        *,
        promote: bool = False,
        **options: Any,
    ) -> Submitted:
        """Queue an import of an ONNX or TorchScript autoencoder (options as `POST /import`)."""
        return await self._send(calls.import_model(path, name, calibration, options, promote))

    async def jobs(self, limit: int = 100) -> list[JobRecord]:
        return await self._send(calls.jobs(limit))

    async def job(self, job_id: str) -> JobRecord:
        return await self._send(calls.job(job_id))

    async def cancel_job(self, job_id: str) -> JobRecord:
        return await self._send(calls.cancel_job(job_id))

    async def events(self, job_id: str, last_event_id: int = 0) -> AsyncIterator[JobEvent]:
        """The job's events as they come, until `done`; resumes after epoch `last_event_id`."""
        call = calls.events(job_id, last_event_id)
        async with self._http.stream(
            call.method, call.path, headers=call.headers, timeout=httpx.Timeout(None)
        ) as response:
            if not response.is_success:
                await response.aread()
                raise_for_status(response)
            parser = EventParser()
            async for line in response.aiter_lines():
                event = parser.feed(line)
                if event is not None:
                    yield event
                    if event.event == "done":
                        return

    async def wait(self, job_id: str, timeout: float | None = None) -> JobRecord:
        """Follow the job to its end; `JobFailed` unless it succeeded."""
        deadline = None if timeout is None else time.monotonic() + timeout
        async for event in self.events(job_id):
            if event.record is not None:
                return finished(event.record)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} did not finish within {timeout} s")
        return finished(await self.job(job_id))

    # -- datasets -------------------------------------------------------------------------------

    async def upload_dataset(
        self, data: npt.ArrayLike | str | Path, *, filename: str | None = None
    ) -> Dataset:
        return await self._send(calls.upload_dataset(data, filename))

    async def datasets(self) -> list[Dataset]:
        return await self._send(calls.datasets())

    async def dataset(self, dataset_id: str) -> Dataset:
        return await self._send(calls.dataset(dataset_id))

    async def delete_dataset(self, dataset_id: str) -> Dataset:
        return await self._send(calls.delete_dataset(dataset_id))

    # -- operations -----------------------------------------------------------------------------

    async def health(self) -> bool:
        return await self._send(calls.health())

    async def ready(self) -> Readiness:
        return await self._send(calls.ready())

    async def metrics(self) -> str:
        return await self._send(calls.metrics())
