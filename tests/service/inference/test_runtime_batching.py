"""The runtime's batched (`*_async`) methods answer exactly what the unbatched ones do."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from core.errors import InvalidInput
from core.repository import ModelRepository
from service.inference.loading import load_runtime
from service.inference.options import RuntimeOptions
from service.inference.runtime import ModelRuntime, ScoreResult
from tests.tiny_model import publish_tiny_model, sample_vectors

# Merged runs change only the batch dimension of each matrix product.
TOLERANCE = {"rtol": 1e-6, "atol": 1e-7}


@pytest.fixture(params=[True, False], ids=["batching", "no-batching"])
def runtime(request: pytest.FixtureRequest, repository: ModelRepository) -> ModelRuntime:
    version = publish_tiny_model(repository, "tiny", hidden_dim=3)
    options = RuntimeOptions(
        max_batch=64, dynamic_batching=request.param, max_batch_rows=32, max_queue_delay_us=2000
    )
    return load_runtime(repository.verify("tiny", version), options)


def assert_same_scores(batched: ScoreResult, alone: ScoreResult) -> None:
    np.testing.assert_allclose(batched.scores, alone.scores, **TOLERANCE)
    np.testing.assert_array_equal(batched.anomalies, alone.anomalies)
    np.testing.assert_allclose(batched.p_values, alone.p_values, **TOLERANCE)
    assert batched.threshold == alone.threshold


def test_concurrent_scores_match_unbatched_ones_request_by_request(runtime: ModelRuntime) -> None:
    batches = [sample_vectors(runtime.manifest, 1 + i % 5, seed=i) for i in range(40)]
    thresholds = [None if i % 3 else 0.5 for i in range(40)]

    async def main() -> list[ScoreResult]:
        return await asyncio.gather(
            *(runtime.score_async(x, t) for x, t in zip(batches, thresholds, strict=True))
        )

    for x, t, result in zip(batches, thresholds, asyncio.run(main()), strict=True):
        assert_same_scores(result, asyncio.run(runtime.score_async(x, t)))
        assert result.feature_errors is None


def test_explain_and_plain_scores_can_share_the_queue(runtime: ModelRuntime) -> None:
    x = sample_vectors(runtime.manifest, 3)

    async def main() -> list[ScoreResult]:
        return await asyncio.gather(*(runtime.score_async(x, explain=i % 2 == 0) for i in range(6)))

    for i, result in enumerate(asyncio.run(main())):
        expected = asyncio.run(runtime.score_async(x, explain=i % 2 == 0))
        assert_same_scores(result, expected)
        if expected.feature_errors is None:
            assert result.feature_errors is None
        else:
            np.testing.assert_allclose(result.feature_errors, expected.feature_errors, **TOLERANCE)


def test_encode_decode_reconstruct_infer_match_unbatched(runtime: ModelRuntime) -> None:
    xs = [sample_vectors(runtime.manifest, 2, seed=i) for i in range(8)]
    codes = [asyncio.run(runtime.encode_async(x)) for x in xs]

    async def main() -> list[Any]:
        return await asyncio.gather(
            *(runtime.encode_async(x) for x in xs),
            *(runtime.decode_async(z) for z in codes),
            *(runtime.reconstruct_async(x) for x in xs),
            *(runtime.infer_async("autoencoder", {"x": x}, ["scores", "codes"]) for x in xs),
        )

    results = asyncio.run(main())
    encoded, decoded, reconstructed, inferred = (results[i * 8 : (i + 1) * 8] for i in range(4))
    for i, x in enumerate(xs):
        np.testing.assert_allclose(encoded[i], codes[i], **TOLERANCE)
        np.testing.assert_allclose(
            decoded[i], asyncio.run(runtime.decode_async(codes[i])), **TOLERANCE
        )
        np.testing.assert_allclose(
            reconstructed[i], asyncio.run(runtime.reconstruct_async(x)), **TOLERANCE
        )
        expected = asyncio.run(runtime.infer_async("autoencoder", {"x": x}, ["scores", "codes"]))
        assert list(inferred[i]) == ["scores", "codes"]
        for name in expected:
            np.testing.assert_allclose(inferred[i][name], expected[name], **TOLERANCE)


def test_a_bad_request_is_refused_alone(runtime: ModelRuntime) -> None:
    good = [sample_vectors(runtime.manifest, 2, seed=i) for i in range(6)]
    wrong_width = np.zeros((1, runtime.input_dim + 1), dtype=np.float32)
    not_finite = np.full((1, runtime.input_dim), np.inf, dtype=np.float32)

    async def main() -> list[Any]:
        calls = [runtime.score_async(x) for x in good]
        calls[1:1] = [runtime.score_async(wrong_width), runtime.score_async(not_finite)]
        return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(main())
    assert isinstance(results[1], InvalidInput) and "expects" in results[1].message
    assert isinstance(results[2], InvalidInput) and "finite" in results[2].message
    for x, result in zip(good, results[:1] + results[3:], strict=True):
        assert_same_scores(result, asyncio.run(runtime.score_async(x)))


def test_a_newer_version_gets_its_own_batcher(repository: ModelRepository) -> None:
    options = RuntimeOptions(max_batch=64)
    old = load_runtime(repository.verify("tiny", publish_tiny_model(repository, "tiny")), options)
    new = load_runtime(
        repository.verify("tiny", publish_tiny_model(repository, "tiny", seed=5)), options
    )
    x = sample_vectors(old.manifest, 4)

    async def main() -> list[ScoreResult]:
        return await asyncio.gather(old.score_async(x), new.score_async(x))

    from_old, from_new = asyncio.run(main())
    assert old._batcher is not new._batcher
    assert_same_scores(from_old, asyncio.run(old.score_async(x)))
    assert_same_scores(from_new, asyncio.run(new.score_async(x)))
    assert not np.allclose(from_old.scores, from_new.scores)
