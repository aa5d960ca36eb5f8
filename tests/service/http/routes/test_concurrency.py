"""Many clients at once: dynamic batching merges their requests, and each gets its own answer."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from fastapi.testclient import TestClient
from numpy.testing import assert_allclose

from core.repository import ModelRepository
from tests.service.http.routes.reference import Reference


def test_concurrent_clients_each_get_their_own_scores(
    client: TestClient, repository: ModelRepository
) -> None:
    reference = Reference(repository.version_dir("tiny", 1), repository.manifest("tiny", 1))
    batches = [np.random.default_rng(i).normal(size=(1 + i % 4, 4)) for i in range(60)]

    def score(i: int) -> tuple[int, dict]:
        if i % 7 == 3:  # a bad request among them: a row of the wrong width
            response = client.post("/score", json={"vectors": [[1.0, 2.0, 3.0]]})
        else:
            response = client.post("/score", json={"vectors": batches[i].tolist()})
        return response.status_code, response.json()

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(score, range(60)))
    for i, (status, body) in enumerate(answers):
        if i % 7 == 3:
            assert status == 422
            assert body["detail"] == "vectors: row 0 has 3 values; model 'tiny' v1 expects 4"
        else:
            assert status == 200
            assert_allclose(body["scores"], reference.scores(batches[i]), rtol=1e-4, atol=1e-5)


def test_with_batching_off_answers_are_the_same(settings, repository: ModelRepository) -> None:
    from service.http.app import create_app

    reference = Reference(repository.version_dir("tiny", 1), repository.manifest("tiny", 1))
    rows = np.random.default_rng(3).normal(size=(5, 4))
    off = settings.model_copy(update={"dynamic_batching": False})
    with TestClient(create_app(off)) as client, ThreadPoolExecutor(4) as pool:
        bodies = list(
            pool.map(
                lambda _: client.post("/score", json={"vectors": rows.tolist()}).json(),
                range(8),
            )
        )
    for body in bodies:
        assert_allclose(body["scores"], reference.scores(rows), rtol=1e-4, atol=1e-5)
