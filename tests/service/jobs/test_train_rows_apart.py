"""A /train body's inline rows are read by simdjson into one buffer of doubles and the rest of
the body validated by pydantic, with the answer the whole body would have had: the same request,
the same float32 rows, the same errors; a body that path cannot vouch for goes to pydantic whole."""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from core.errors import InvalidInput
from service.http.train_body import parse_train_request
from service.jobs.schemas import TrainRequest
from service.jobs.submission import as_matrix


def _outcome(body: bytes) -> Any:
    """parse_train_request's answer, as comparable values: its errors, or the request's fields
    and the rows it made (None where the rows make no matrix)."""
    try:
        parsed = parse_train_request(body)
    except ValidationError as exc:
        return exc.errors(include_url=False, include_context=False)
    rows = None if parsed.rows is None else parsed.rows.tolist()
    return parsed.request.model_dump(exclude={"data": {"vectors"}}), rows


def _whole_outcome(body: bytes) -> Any:
    try:
        request = TrainRequest.model_validate_json(body, strict=True)
    except ValidationError as exc:
        return exc.errors(include_url=False, include_context=False)
    try:
        rows = as_matrix(request.data.vectors or []).tolist()
    except InvalidInput:
        rows = None
    return request.model_dump(exclude={"data": {"vectors"}}), rows


ROWS = [[0.1, 2, -3.5e-7], [1e30, 0, 1]] * 5
BODIES = {
    "floats and ints": {"name": "m", "data": {"vectors": ROWS}},
    "every field": {
        "name": "m",
        "data": {"vectors": ROWS},
        "config": {"hidden_dims": [8, 4], "latent_dim": 2, "epochs": 3},
        "feature_names": ["a[0]", "b", "c"],
        "promote": True,
    },
}


@pytest.mark.parametrize("case", list(BODIES))
def test_the_rows_apart_give_what_the_whole_body_gives(case: str) -> None:
    body = json.dumps(BODIES[case]).encode()
    parsed = parse_train_request(body)
    assert parsed.request.data.vectors is None  # the rows came apart
    assert parsed.rows is not None and parsed.rows.dtype == np.float32
    assert _outcome(body) == _whole_outcome(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"name": "m", "data": {"vectors": [[1, 2]]}, "promote": 0}',
        b'{"name": "m", "data": {"vectors": [[1, 2]], "dataset": "ds_1"}}',
        b'{"name": "m", "data": {"vectors": [[1, 2]]}, "config": {"epochs": "5"}}',
        b'{"name": "m", "data": {"vectors": [[1, 2]]}, "colour": "red"}',
    ],
)
def test_another_fields_error_is_the_whole_bodys(body: bytes) -> None:
    assert isinstance(_outcome(body), list)  # errors, with the inputs as sent
    assert _outcome(body) == _whole_outcome(body)


@pytest.mark.parametrize(
    "vectors",
    [
        "[[true, 2], [3, 4]]",  # a boolean: pydantic refuses it in strict mode
        '[[1, "2"], [3, 4]]',
        "[[[1], 2], [3, 4]]",  # a row nested, as wide as the others once flattened
        "[[1, 2], [3]]",  # ragged: the submission names the row
        "[[1e39, 2], [3, 4]]",  # beyond float32: the submission names the cell
        '[[1, 2], [3, 4]], "vectors": [[5, 6]]',  # a key twice: pydantic keeps the last
    ],
)
def test_a_body_it_cannot_vouch_for_goes_to_pydantic_whole(vectors: str) -> None:
    body = b'{"name": "m", "data": {"vectors": %s}}' % vectors.encode()
    assert _outcome(body) == _whole_outcome(body)


def test_the_rows_never_become_python_floats() -> None:
    """300 rows of 784, as a client posts a small training set inline: pydantic made 235,200
    Python floats (and their lists), whose freed memory the allocator kept; apart, what is
    allocated is the float64 buffer and the float32 matrix."""
    rows = np.random.default_rng(0).random((300, 784)).round(3).tolist()
    body = json.dumps({"name": "m", "data": {"vectors": rows}}).encode()
    tracemalloc.start()
    try:
        parsed = parse_train_request(body)
        _, apart = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        TrainRequest.model_validate_json(body, strict=True)
        _, whole = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert parsed.rows is not None and parsed.rows.shape == (300, 784)
    assert apart < 300 * 784 * (8 + 4) * 1.5
    assert whole > 2.5 * apart  # 235,200 floats of 24 bytes and their lists
