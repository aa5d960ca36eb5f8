"""The asyncio client against a real server: the same routes as the blocking one, awaited."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from service.client import AsyncClient, Conflict, InvalidInput, NotFound, Unauthorized
from tests.service.client.conftest import API_KEY, NAMES, Server
from tests.service.jobs.helpers import rows as training_rows
from tests.tiny_model import publish_tiny_model, reference_outputs, sample_vectors


def test_every_method(server: Server, tmp_path: Path) -> None:
    rows = sample_vectors(server.repository.manifest("tiny", 1), 4)
    expected = reference_outputs(server.repository.manifest("tiny", 1), rows)
    publish_tiny_model(server.repository, "async-model")
    spare = publish_tiny_model(server.repository, "async-model", seed=2, promote=False)

    async def scenario() -> None:
        async with AsyncClient(server.url, api_key=API_KEY) as client:
            assert await client.health()
            assert (await client.ready()).status == "ready"
            assert "aeserve_" in await client.metrics()
            for binary in (False, True):
                scores = await client.score(rows, explain=True, top=1, binary=binary)
                assert_allclose(scores.scores, expected["scores"], rtol=1e-4, atol=1e-6)
                assert scores.top_indices.shape == (4, 1)
                codes = await client.encode(rows, binary=binary)
                assert_allclose(codes.array, expected["codes"], rtol=1e-4, atol=1e-5)
                decoded = await client.decode(codes.array, binary=binary)
                assert decoded.array.shape == (4, 4)
                rebuilt = await client.reconstruct(rows, binary=binary)
                assert_allclose(rebuilt.array, expected["reconstructions"], rtol=1e-4, atol=1e-4)
            # concurrent calls share one connection pool
            many = await asyncio.gather(*(client.score(rows) for _ in range(8)))
            assert all(np.array_equal(m.scores, many[0].scores) for m in many)

            assert "async-model" in [m.name for m in await client.models()]
            assert (await client.model("async-model")).versions == [1, spare]
            assert (await client.manifest("async-model", spare)).version == spare
            assert (await client.calibration("async-model", 1)).n > 0
            assert (await client.traffic("async-model", 1)).model.name == "async-model"
            assert (await client.promote("async-model", spare)).active_version == spare
            await client.delete_version("async-model", 1)
            with pytest.raises(Conflict) as conflict:
                await client.delete_version("async-model", spare)
            assert conflict.value.status == 409

            data = np.asarray(training_rows(n=40, d=4), dtype=np.float32)
            uploaded = await client.upload_dataset(data, filename="vitals.npy")
            assert uploaded.filename == "vitals.npy"
            assert uploaded.dataset in [d.dataset for d in await client.datasets()]
            assert (await client.dataset(uploaded.dataset)).rows == 40
            submitted = await client.train(
                "async-trained", uploaded.dataset, config={"epochs": 2}, feature_names=NAMES
            )
            events = [event async for event in client.events(submitted.job_id)]
            assert events[-1].event == "done" and events[-1].record is not None
            record = await client.wait(submitted.job_id)
            assert record.result is not None and record.result.model.name == "async-trained"
            assert (await client.job(submitted.job_id)).status == "succeeded"
            assert submitted.job_id in [j.job_id for j in await client.jobs()]
            with pytest.raises(Conflict):
                await client.cancel_job(submitted.job_id)
            assert (await client.delete_dataset(uploaded.dataset)).dataset == uploaded.dataset
            with pytest.raises(NotFound) as missing:
                await client.dataset(uploaded.dataset)
            assert missing.value.status == 404 and uploaded.dataset in missing.value.detail
            with pytest.raises(InvalidInput) as invalid:
                await client.score(rows[:, :2])
            assert invalid.value.detail == "vectors: row 0 has 2 values; model 'tiny' v1 expects 4"

        async with AsyncClient(server.url) as anonymous:
            with pytest.raises(Unauthorized) as unauthorized:
                await anonymous.jobs()
            assert unauthorized.value.status == 401

    asyncio.run(scenario())
